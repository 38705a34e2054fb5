using System.Globalization;
using AspireTune.Contracts.Common;
using AspireTune.Engine.Checkpoints;
using AspireTune.Engine.Models;
using AspireTune.FineTuning.Jobs;
using AspireTune.Engine.Training;
using Microsoft.Extensions.Options;

namespace AspireTune.FineTuning.Workers;

/// <summary>Trains with the engine's <see cref="SftTrainer"/>, or <see cref="DpoTrainer"/> for a dpo job, on a dedicated thread (CUDA when present, else CPU).</summary>
public sealed class EngineTrainingBackend(IOptions<FineTuningOptions> options) : ITrainingBackend
{
    public Task<TrainingOutcome> TrainAsync(TrainingRun run, ITrainingListener listener, CancellationToken ct) =>
        Task.Factory.StartNew(() => Train(run, listener, ct), ct, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private TrainingOutcome Train(TrainingRun run, ITrainingListener listener, CancellationToken ct)
    {
        // A LoRA run never trains the base: it is built frozen (in bf16 where matmuls run in bf16), so no fp32 copy of it is held.
        var lora = (run.Dpo?.Training ?? run.Options).Lora is not null;
        using var model = CausalLm.Load(run.BaseModelDirectory, CausalLm.DefaultDevice(), new ModelOptions { FrozenBase = lora });
        var sft = run.Options with { ExactMatchExamples = Math.Min(options.Value.ExactMatchExamples, run.Validation.Count) };
        var observer = new Observer(listener);
        listener.OnStarted(run.TotalSteps, model.Device.ToString(), ResumedStep(run.ResumeFrom));
        var result = run.Dpo is { } dpo
            ? new DpoTrainer(model, dpo, observer).Train(run.PreferenceTrain, run.PreferenceValidation, run.CheckpointDirectory, run.ResumeFrom, ct)
            : new SftTrainer(model, sft, observer).Train(run.Train, run.Validation, run.CheckpointDirectory, run.ResumeFrom, ct);

        // Saved beside and renamed: a half-written model directory is never registered or served.
        var staging = run.OutputDirectory + ".saving";
        if (Directory.Exists(staging))
            Directory.Delete(staging, recursive: true);
        // LoRA leaves the base as it was stored: the merged model is written in the base's dtype (bf16 stays bf16, half
        // the size of fp32), as PEFT merges; a full fine-tune keeps its fp32 master weights.
        model.Save(staging, new SaveOptions { DType = lora ? HfWeights.StoredDType(run.BaseModelDirectory) : SafeTensorDType.F32 });
        if (Directory.Exists(run.OutputDirectory))
            Directory.Delete(run.OutputDirectory, recursive: true);
        Directory.Move(staging, run.OutputDirectory);

        var metrics = new List<MetricValue>();
        if (result.Best is { } best)
        {
            metrics.Add(new MetricValue { Name = "valid_loss", Value = best.ValidationLoss });
            metrics.Add(new MetricValue { Name = "valid_mean_token_accuracy", Value = best.MeanTokenAccuracy });
            if (best.ExactMatch is { } em)
                metrics.Add(new MetricValue { Name = "valid_exact_match", Value = em });
            if (best.RewardAccuracy is { } accuracy)
                metrics.Add(new MetricValue { Name = "valid_reward_accuracy", Value = accuracy });
            if (best.RewardMargin is { } margin)
                metrics.Add(new MetricValue { Name = "valid_reward_margin", Value = margin });
            metrics.Add(new MetricValue { Name = "train_loss", Value = best.TrainLoss });
        }
        return new TrainingOutcome
        {
            Steps = result.Steps,
            BestStep = result.BestStep,
            BestMetrics = metrics,
            StoppedEarly = result.StoppedEarly,
            FitVerdict = result.Verdict switch
            {
                FitVerdict.GoodFit => "good_fit",
                FitVerdict.Overfitting => "overfitting",
                FitVerdict.Underfitting => "underfitting",
                _ => "inconclusive",
            },
            FitAdvice = result.Advice,
            TrainedTokens = observer.Tokens,
        };
    }

    /// <summary>Step of a <c>checkpoint-NNNNNN</c> folder, 0 for a fresh start.</summary>
    private static int ResumedStep(string? checkpoint) =>
        checkpoint is not null && Path.GetFileName(checkpoint.TrimEnd('/')) is { } name && name.StartsWith("checkpoint-", StringComparison.Ordinal)
        && int.TryParse(name["checkpoint-".Length..], NumberStyles.None, CultureInfo.InvariantCulture, out var step) ? step : 0;

    /// <summary>Passes the engine's reports through unchanged, keeping the trainer's exact token count (carried across resumes).</summary>
    private sealed class Observer(ITrainingListener listener) : ITrainingObserver
    {
        public long Tokens;

        public void OnProgress(TrainingProgress p)
        {
            Tokens = p.TrainedTokens;
            listener.OnProgress(p);
        }

        public void OnEvaluation(EvaluationResult e) => listener.OnEvaluation(e);

        public void OnCheckpoint(CheckpointInfo c) => listener.OnCheckpoint(c);
    }
}

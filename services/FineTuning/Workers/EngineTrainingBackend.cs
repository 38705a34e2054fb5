using System.Globalization;
using AspireTune.Contracts.Common;
using AspireTune.FineTuning.Jobs;
using AspireTune.Engine.Models;
using AspireTune.Engine.Training;
using Microsoft.Extensions.Options;

namespace AspireTune.FineTuning.Workers;

/// <summary>Trains with the engine's <see cref="SftTrainer"/> on a dedicated thread (CUDA when present, else CPU).</summary>
public sealed class EngineTrainingBackend(IOptions<FineTuningOptions> options) : ITrainingBackend
{
    public Task<TrainingOutcome> TrainAsync(TrainingRun run, ITrainingListener listener, CancellationToken ct) =>
        Task.Factory.StartNew(() => Train(run, listener, ct), ct, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private TrainingOutcome Train(TrainingRun run, ITrainingListener listener, CancellationToken ct)
    {
        var h = run.Hyperparameters;
        using var model = CausalLm.Load(run.BaseModelDirectory, CausalLm.DefaultDevice());
        var total = h.TotalSteps(run.Train.Count);
        var sft = new SftOptions
        {
            Epochs = h.Epochs,
            BatchSize = h.BatchSize,
            LearningRate = h.LearningRate,
            WarmupSteps = (int)Math.Round(h.WarmupRatio * total),
            Schedule = h.Scheduler switch { "linear" => LearningRateSchedule.Linear, "constant" => LearningRateSchedule.Constant, _ => LearningRateSchedule.Cosine },
            WeightDecay = h.WeightDecay,
            Dropout = h.Dropout,
            EvalEverySteps = Math.Max(1, h.EvalInterval),
            EarlyStoppingPatience = h.EarlyStoppingPatience,
            CheckpointEverySteps = Math.Max(1, h.CheckpointInterval),
            Lora = h.LoraRank > 0 ? new LoraOptions { Rank = h.LoraRank, Alpha = h.LoraAlpha } : null,
            MaxSequenceLength = h.MaxSeqLen,
            Seed = h.Seed,
            ExactMatchExamples = Math.Min(options.Value.ExactMatchExamples, run.Validation.Count),
        };
        var observer = new Observer(listener);
        listener.OnStarted(total, model.Device.ToString(), ResumedStep(run.ResumeFrom));
        var trainer = new SftTrainer(model, sft, observer);
        var result = trainer.Train(
            run.Train.Select(e => new SftExample(e.Prompt, e.Completion)).ToList(),
            run.Validation.Select(e => new SftExample(e.Prompt, e.Completion)).ToList(),
            run.CheckpointDirectory, run.ResumeFrom, ct);

        // Saved beside and renamed: a half-written model directory is never registered or served.
        var staging = run.OutputDirectory + ".saving";
        if (Directory.Exists(staging))
            Directory.Delete(staging, recursive: true);
        model.Save(staging);
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

    private sealed class Observer(ITrainingListener listener) : ITrainingObserver
    {
        /// <summary>Tokens the trainer counted over every step, exact and carried across resumes.</summary>
        public long Tokens;

        public void OnProgress(TrainingProgress p)
        {
            Tokens = p.TrainedTokens;
            listener.OnStep(new StepReport(p.Step, p.TotalSteps, p.Epoch, p.TrainLoss, p.LearningRate, p.TokensPerSecond));
        }

        public void OnEvaluation(EvaluationResult e) =>
            listener.OnEvaluation(new EvaluationReport(e.Step, e.Epoch, e.TrainLoss, e.ValidationLoss, e.MeanTokenAccuracy, e.ExactMatch));

        public void OnCheckpoint(CheckpointInfo c) =>
            listener.OnCheckpoint(new CheckpointReport(c.Step, c.Directory, c.TrainLoss, c.LastEvaluation?.ValidationLoss, c.LastEvaluation?.MeanTokenAccuracy));
    }
}

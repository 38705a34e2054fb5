using System.ComponentModel.DataAnnotations;
using System.Diagnostics;
using System.Globalization;
using AspireTune.Engine.Distributed;
using AspireTune.Engine.Generation;
using AspireTune.Engine.Models;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace AspireTune.Engine.Training;

/// <summary>
/// Supervised fine-tuning of a <see cref="CausalLm"/> on prompt/completion pairs or segmented conversations, watching
/// the validation split: loss on trained segments only (the completion of a pair), AdamW over flat buffers, schedules, clipping, accumulation, dropout,
/// periodic evaluation with early stopping that restores the best step, and exactly resumable checkpoints.
/// </summary>
public sealed class SftTrainer(CausalLm model, SftOptions options, ITrainingObserver? observer = null)
{
    public CausalLm Model { get; } = model;
    public SftOptions Options { get; } = options;

    /// <summary>
    /// Data parallelism across processes (one per GPU): each rank trains on its share of every batch and the gradients
    /// are summed over the ranks before clipping, so every rank takes the same step. Checkpoints are written by rank 0.
    /// </summary>
    public IDataParallel? DataParallel { get; init; }

    /// <summary>
    /// Trains until the step budget, early stopping or cancellation (which throws
    /// <see cref="OperationCanceledException"/> and leaves the last periodic checkpoint to resume from).
    /// </summary>
    /// <param name="train">Training examples.</param>
    /// <param name="validation">Validation examples, evaluated every <see cref="SftOptions.EvalEverySteps"/>.</param>
    /// <param name="checkpointDirectory">Where checkpoint-NNNNNN folders and the best weights are written.</param>
    /// <param name="resumeFrom">A checkpoint-NNNNNN folder, or a checkpoint directory (its latest checkpoint is used).</param>
    /// <param name="cancellationToken">Checked before every optimizer step.</param>
    public TrainingResult Train(IReadOnlyList<SftExample> train, IReadOnlyList<SftExample> validation, string checkpointDirectory,
        string? resumeFrom = null, CancellationToken cancellationToken = default)
    {
        Validator.ValidateObject(Options, new ValidationContext(Options), validateAllProperties: true);
        if (train.Count == 0) throw new ArgumentException("the training split is empty");
        if (validation.Count == 0) throw new ArgumentException("the validation split is empty: it is needed to watch fit");
        var tokenizer = Model.Tokenizer ?? throw new InvalidOperationException("the model has no tokenizer; text examples need one");
        var maxLen = Math.Min(Options.MaxSequenceLength, Model.Config.MaxPositions);
        var trainSeqs = SftData.Encode(train, tokenizer, maxLen, "training");
        var valSeqs = SftData.Encode(validation, tokenizer, maxLen, "validation");
        var padId = tokenizer.EosTokenId ?? 0;
        Directory.CreateDirectory(checkpointDirectory);

        if (Options.Lora is { } lora && !Model.HasLora) Model.AddLora(lora);
        if (Options.Dropout is { } d) Model.SetDropout(d, d, d);
        var device = Model.Device;
        var trainable = Model.NamedParameters().Where(p => p.Parameter.requires_grad).ToList();
        using var flat = new FlatParameters(trainable, Options.WeightDecay, device);
        using var optimizer = new FlatAdamW(flat, Options.Beta1, Options.Beta2, Options.AdamEpsilon, Model.Kernels);
        // Every rank starts from rank 0's weights (LoRA adapters and any other random initialisation included).
        DataParallel?.Broadcast(flat.Data);

        // What a batch is made of: one example per row, or (packing) rows of several examples.
        List<List<SftSequence>> units = Options.Packing ? SftData.Pack(trainSeqs, maxLen) : [.. trainSeqs.Select(s => new List<SftSequence> { s })];
        var schedule = new StepSchedule(units.Count, Options);
        var (stepsPerEpoch, totalSteps) = (schedule.StepsPerEpoch, schedule.TotalSteps);
        var state = new TrainerState { Seed = Options.Seed, TotalSteps = totalSteps, OptionsFingerprint = Fingerprint(train.Count) };
        float[][]? best = null;
        var checkpoints = new TrainerCheckpoints(Options.KeepCheckpoints, observer);

        if (resumeFrom is not null)
            (state, best) = checkpoints.Resume(resumeFrom, flat, optimizer, state.OptionsFingerprint);

        var watch = Stopwatch.StartNew();
        var stoppedEarly = false;

        for (var step = state.Step + 1; step <= totalSteps; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var stepWatch = Stopwatch.StartNew();
            var micro = schedule.MicroBatches(step).Select(b => b.Select(i => units[i]).ToList()).ToList();
            // The loss is the mean over every trained token of the step, whatever the micro-batch split.
            var stepTargets = micro.Sum(m => m.Sum(u => u.Sum(s => s.TargetCount)));
            Tensor? lossSum = null;
            var tokens = 0;
            Model.SetTraining(true);
            for (var m = 0; m < micro.Count; m++)
            {
                StepSchedule.Reseed(Options.Seed, step, m, device);
                using var scope = NewDisposeScope();
                var shard = DataParallel is { WorldSize: > 1 } dp ? micro[m].Where((_, i) => i % dp.WorldSize == dp.Rank).ToList() : micro[m];
                if (shard.Count == 0)
                    continue; // a last batch smaller than the world: this rank adds nothing but still joins the sum below
                Tensor loss;
                if (Options.Packing)
                {
                    var (ids, targets, positions, mask, n, _) = SftData.CollatePacked(shard, padId, device);
                    tokens += n;
                    loss = Model.LossSum(ids, targets, positions, mask);
                }
                else
                {
                    var (ids, targets, n, _) = SftData.Collate([.. shard.Select(u => u[0])], padId, device);
                    tokens += n;
                    loss = Model.LossSum(ids, targets);
                }
                (loss / Math.Max(1, stepTargets)).backward();
                var detached = loss.detach();
                var running = scope.MoveToOuter(lossSum is null ? detached : lossSum + detached);
                lossSum?.Dispose();
                lossSum = running;
            }
            if (DataParallel is { } parallel)
            {
                // Each rank's loss was divided by the global target count: the sum over ranks is the whole step's gradient.
                parallel.AllReduceSum(flat.Grad); // one buffer: one collective for the whole model
                using var totals = tensor(new[] { lossSum is null ? 0f : lossSum.item<float>(), tokens }, device: device);
                parallel.AllReduceSum(totals);
                lossSum?.Dispose();
                lossSum = totals[0].clone();
                tokens = (int)totals[1].item<float>();
            }
            using var gradNormTensor = flat.GradNorm();
            var lr = Schedules.LearningRate(Options.Schedule, Options.LearningRate, step, Options.WarmupSteps, totalSteps);
            optimizer.Step(lr, gradNormTensor, Options.MaxGradNorm);
            flat.ZeroGrad();
            // One host synchronisation per step, after the optimizer's kernels are queued.
            var gradNorm = (double)gradNormTensor.item<float>();
            var lossValue = (double)lossSum!.item<float>();
            lossSum.Dispose();
            var trainLoss = lossValue / Math.Max(1, stepTargets);
            state.Step = step;
            state.TrainLosses.Add(trainLoss);
            state.TrainedTokens += tokens;
            var epochProgress = (double)step / stepsPerEpoch;
            observer?.OnProgress(new TrainingProgress(step, totalSteps, epochProgress, trainLoss, lr, gradNorm,
                tokens / Math.Max(1e-9, stepWatch.Elapsed.TotalSeconds), state.TrainedTokens));

            if (step % Options.EvalEverySteps == 0 || step == totalSteps)
            {
                // Mean training loss since the previous evaluation, from the saved history so that resumes agree.
                var since = state.Evaluations.LastOrDefault()?.Step ?? 0;
                var eval = Evaluate(valSeqs, padId, step, epochProgress, state.TrainLosses.Skip(since).Average());
                stoppedEarly = checkpoints.RecordEvaluation(Options, state, eval, flat, checkpointDirectory, ref best);
            }
            if (DataParallel is not { Rank: > 0 } && ((Options.CheckpointEverySteps > 0 && step % Options.CheckpointEverySteps == 0) || step == totalSteps || stoppedEarly))
                checkpoints.Save(checkpointDirectory, state, flat, optimizer, trainLoss);
            if (stoppedEarly) break;
        }

        Model.SetTraining(false);
        return checkpoints.Finish(Options, state, flat, best, stoppedEarly, watch.Elapsed);
    }

    /// <summary>Scores the model as it is on a validation split (a baseline before training, or a final check).</summary>
    public EvaluationResult Evaluate(IReadOnlyList<SftExample> validation)
    {
        var tokenizer = Model.Tokenizer ?? throw new InvalidOperationException("the model has no tokenizer; text examples need one");
        var maxLen = Math.Min(Options.MaxSequenceLength, Model.Config.MaxPositions);
        var seqs = SftData.Encode(validation, tokenizer, maxLen, "validation");
        return Evaluate(seqs, tokenizer.EosTokenId ?? 0, 0, 0, double.NaN);
    }

    /// <summary>
    /// Validation loss and mean token accuracy over the trained tokens (every trained segment), and exact match of the
    /// greedy answer to each example's prompt against its completion (a conversation's final answer).
    /// </summary>
    private EvaluationResult Evaluate(List<SftSequence> val, int padId, int step, double epoch, double trainLoss)
    {
        Model.SetTraining(false);
        double lossSum = 0;
        long correct = 0, count = 0;
        using (no_grad())
        {
            for (var i = 0; i < val.Count; i += Options.BatchSize)
            {
                using var scope = NewDisposeScope();
                var (ids, targets, _, n) = SftData.Collate(val.Skip(i).Take(Options.BatchSize).ToList(), padId, Model.Device);
                var logits = Model.Forward(ids);
                var v = logits.shape[2];
                lossSum += F.cross_entropy(logits.reshape(-1, v), targets.reshape(-1), ignore_index: -100, reduction: nn.Reduction.Sum).item<float>();
                var mask = targets.ne(-100);
                correct += logits.argmax(-1).eq(targets).logical_and(mask).sum().item<long>();
                count += n;
            }
        }
        double? exact = null;
        var sample = val.Take(Options.ExactMatchExamples).ToList();
        if (sample.Count > 0)
        {
            var generator = new TextGenerator(Model);
            var hits = 0;
            foreach (var s in sample)
            {
                var maxTokens = s.Ids.Length - s.PromptLength + 2;
                var answer = generator.Generate(s.PromptIds, new GenerationOptions { MaxTokens = maxTokens }).Text;
                if (string.Equals(answer.Trim(), s.Completion.Trim(), StringComparison.Ordinal)) hits++;
            }
            exact = (double)hits / sample.Count;
        }
        return new EvaluationResult(step, epoch, trainLoss, lossSum / Math.Max(1, count), (double)correct / Math.Max(1, count), exact);
    }

    private string Fingerprint(int trainCount) => string.Create(CultureInfo.InvariantCulture,
        $"n={trainCount};bs={Options.BatchSize};acc={Options.GradientAccumulationSteps};ep={Options.Epochs};max={Options.MaxSteps};seed={Options.Seed};lora={Options.Lora?.Rank}{(Options.Packing ? ";packed" : "")}");
}

using System.ComponentModel.DataAnnotations;
using System.Diagnostics;
using System.Globalization;
using AspireTune.Engine.Models;
using AspireTune.Engine.Tokenization;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace AspireTune.Engine.Training;

/// <summary>
/// Preference fine-tuning by Direct Preference Optimization (Rafailov et al., 2023) of a <see cref="CausalLm"/>:
/// the loss of a pair is -log sigmoid(beta x ((log pi(chosen) - log ref(chosen)) - (log pi(rejected) - log ref(rejected)))),
/// each log-probability summed over the answer's tokens given the prompt. The reference is the model as it is
/// handed over (the base), frozen: its log-probabilities are computed once for every pair before the first step,
/// with any attached LoRA adapters turned off, so neither a copy of the weights nor a second forward per step is
/// needed. The loop is <see cref="SftTrainer"/>'s: flat AdamW, schedules, clipping, accumulation, evaluation with
/// early stopping on the validation DPO loss, best-step restore and exactly resumable checkpoints.
/// </summary>
public sealed class DpoTrainer(CausalLm model, DpoOptions options, ITrainingObserver? observer = null)
{
    public CausalLm Model { get; } = model;
    public DpoOptions Options { get; } = options;

    /// <summary>
    /// Trains until the step budget, early stopping or cancellation (<see cref="OperationCanceledException"/>, leaving
    /// the last periodic checkpoint to resume from). The model must hold the base weights when this is called, also
    /// when resuming: the reference is scored from them before the checkpoint's weights are restored.
    /// </summary>
    public TrainingResult Train(IReadOnlyList<DpoExample> train, IReadOnlyList<DpoExample> validation, string checkpointDirectory,
        string? resumeFrom = null, CancellationToken cancellationToken = default)
    {
        var o = Options.Training;
        Validator.ValidateObject(Options, new ValidationContext(Options), validateAllProperties: true);
        Validator.ValidateObject(o, new ValidationContext(o), validateAllProperties: true);
        if (o.Packing) throw new ArgumentException("packing does not apply to preference pairs");
        if (train.Count == 0) throw new ArgumentException("the training split is empty");
        if (validation.Count == 0) throw new ArgumentException("the validation split is empty: it is needed to watch fit");
        var tokenizer = Model.Tokenizer ?? throw new InvalidOperationException("the model has no tokenizer; text examples need one");
        var maxLen = Math.Min(o.MaxSequenceLength, Model.Config.MaxPositions);
        var trainPairs = Encode(train, tokenizer, maxLen, "training");
        var valPairs = Encode(validation, tokenizer, maxLen, "validation");
        var padId = tokenizer.EosTokenId ?? 0;
        Directory.CreateDirectory(checkpointDirectory);

        // Adapters first: under bf16 matmuls AddLora stores the frozen base in bf16, and the reference must be scored from
        // the weights the policy starts from (adapters off), not from the fp32 values they were rounded from.
        if (o.Lora is { } lora && !Model.HasLora) Model.AddLora(lora);
        var trainReference = ReferenceLogProbs(trainPairs, padId);
        var valReference = ReferenceLogProbs(valPairs, padId);

        if (o.Dropout is { } d) Model.SetDropout(d, d, d);
        var device = Model.Device;
        using var flat = new FlatParameters(Model.NamedParameters().Where(p => p.Parameter.requires_grad), o.WeightDecay, device);
        using var optimizer = new FlatAdamW(flat, o.Beta1, o.Beta2, o.AdamEpsilon, Model.Kernels);

        var schedule = new StepSchedule(trainPairs.Count, o);
        var (stepsPerEpoch, totalSteps) = (schedule.StepsPerEpoch, schedule.TotalSteps);
        var state = new TrainerState { Seed = o.Seed, TotalSteps = totalSteps, OptionsFingerprint = Fingerprint(train.Count) };
        var checkpoints = new TrainerCheckpoints(o.KeepCheckpoints, observer);
        float[][]? best = null;
        if (resumeFrom is not null)
            (state, best) = checkpoints.Resume(resumeFrom, flat, optimizer, state.OptionsFingerprint);

        var watch = Stopwatch.StartNew();
        var stoppedEarly = false;
        for (var step = state.Step + 1; step <= totalSteps; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var stepWatch = Stopwatch.StartNew();
            var micro = schedule.MicroBatches(step);
            // The loss is the mean over every pair of the step, whatever the micro-batch split.
            var stepPairs = micro.Sum(m => m.Count);
            double lossSum = 0;
            var tokens = 0;
            Model.SetTraining(true);
            for (var m = 0; m < micro.Count; m++)
            {
                StepSchedule.Reseed(o.Seed, step, m, device);
                using var scope = NewDisposeScope();
                var batch = Score(micro[m].Select(i => trainPairs[i]).ToList(), micro[m].Select(i => trainReference[i]).ToList(), padId);
                tokens += batch.Tokens;
                (batch.Losses.sum() / stepPairs).backward();
                lossSum += batch.Losses.detach().sum().item<float>();
            }
            using var gradNormTensor = flat.GradNorm();
            var lr = Schedules.LearningRate(o.Schedule, o.LearningRate, step, o.WarmupSteps, totalSteps);
            optimizer.Step(lr, gradNormTensor, o.MaxGradNorm);
            flat.ZeroGrad();
            var gradNorm = (double)gradNormTensor.item<float>();
            var trainLoss = lossSum / stepPairs;
            state.Step = step;
            state.TrainLosses.Add(trainLoss);
            state.TrainedTokens += tokens;
            var epochProgress = (double)step / stepsPerEpoch;
            observer?.OnProgress(new TrainingProgress(step, totalSteps, epochProgress, trainLoss, lr, gradNorm,
                tokens / Math.Max(1e-9, stepWatch.Elapsed.TotalSeconds), state.TrainedTokens));

            if (step % o.EvalEverySteps == 0 || step == totalSteps)
            {
                var since = state.Evaluations.LastOrDefault()?.Step ?? 0;
                var eval = Evaluate(valPairs, valReference, padId, step, epochProgress, state.TrainLosses.Skip(since).Average());
                stoppedEarly = checkpoints.RecordEvaluation(o, state, eval, flat, checkpointDirectory, ref best);
            }
            if ((o.CheckpointEverySteps > 0 && step % o.CheckpointEverySteps == 0) || step == totalSteps || stoppedEarly)
                checkpoints.Save(checkpointDirectory, state, flat, optimizer, trainLoss);
            if (stoppedEarly) break;
        }

        Model.SetTraining(false);
        return checkpoints.Finish(o, state, flat, best, stoppedEarly, watch.Elapsed);
    }

    /// <summary>The preferred and the other answer of each pair with the same (possibly shortened) prompt.</summary>
    internal static List<(SftSequence Chosen, SftSequence Rejected)> Encode(IReadOnlyList<DpoExample> pairs, ITokenizer tokenizer, int maxLength, string split)
    {
        for (var i = 0; i < pairs.Count; i++)
            if (string.Equals(pairs[i].Chosen, pairs[i].Rejected, StringComparison.Ordinal))
                throw new ArgumentException($"{split} pair {i + 1}: the preferred and the non-preferred answer are the same (nothing to learn)");
        var chosen = SftData.Encode([.. pairs.Select(p => new SftExample(p.Prompt, p.Chosen))], tokenizer, maxLength, split);
        var rejected = SftData.Encode([.. pairs.Select(p => new SftExample(p.Prompt, p.Rejected))], tokenizer, maxLength, split);
        return [.. chosen.Zip(rejected)];
    }

    /// <summary>The frozen reference's log-probabilities (chosen, rejected) of every pair: the model as it is now, adapters off, no dropout.</summary>
    private (float Chosen, float Rejected)[] ReferenceLogProbs(List<(SftSequence Chosen, SftSequence Rejected)> pairs, int padId)
    {
        var result = new (float, float)[pairs.Count];
        Model.SetTraining(false);
        using var adaptersOff = Model.WithoutAdapters();
        using var _ = no_grad();
        for (var i = 0; i < pairs.Count; i += Options.Training.BatchSize)
        {
            using var scope = NewDisposeScope();
            var batch = pairs.Skip(i).Take(Options.Training.BatchSize).ToList();
            var (c, r, _) = LogProbs(Model, batch, padId);
            var cs = c.cpu().data<float>().ToArray();
            var rs = r.cpu().data<float>().ToArray();
            for (var j = 0; j < batch.Count; j++) result[i + j] = (cs[j], rs[j]);
        }
        return result;
    }

    /// <summary>Summed answer log-probabilities [B] of the chosen and the rejected rows: one forward over 2B rows.</summary>
    internal static (Tensor Chosen, Tensor Rejected, int Tokens) LogProbs(CausalLm model, IReadOnlyList<(SftSequence Chosen, SftSequence Rejected)> batch, int padId)
    {
        var rows = batch.Select(p => p.Chosen).Concat(batch.Select(p => p.Rejected)).ToList();
        var (ids, targets, tokens, _) = SftData.Collate(rows, padId, model.Device);
        var logp = model.TargetLogProbs(ids, targets);
        return (logp.narrow(0, 0, batch.Count), logp.narrow(0, batch.Count, batch.Count), tokens);
    }

    private sealed record Scored(Tensor Losses, Tensor Margins, Tensor PolicyChosen, Tensor PolicyRejected, int Tokens);

    private Scored Score(List<(SftSequence Chosen, SftSequence Rejected)> batch, List<(float Chosen, float Rejected)> reference, int padId)
    {
        var (pc, pr, tokens) = LogProbs(Model, batch, padId);
        using var rc = tensor(reference.Select(r => r.Chosen).ToArray(), device: Model.Device);
        using var rr = tensor(reference.Select(r => r.Rejected).ToArray(), device: Model.Device);
        var (losses, margins) = DpoLoss.Compute(pc, pr, rc, rr, Options.Beta);
        return new Scored(losses, margins, pc, pr, tokens);
    }

    /// <summary>Validation DPO loss, token accuracy on the preferred answers, reward accuracy and mean reward margin.</summary>
    private EvaluationResult Evaluate(List<(SftSequence Chosen, SftSequence Rejected)> val, (float Chosen, float Rejected)[] reference, int padId,
        int step, double epoch, double trainLoss)
    {
        Model.SetTraining(false);
        double lossSum = 0, marginSum = 0;
        long correct = 0, count = 0, ranked = 0;
        using (no_grad())
        {
            for (var i = 0; i < val.Count; i += Options.Training.BatchSize)
            {
                using var scope = NewDisposeScope();
                var batch = val.Skip(i).Take(Options.Training.BatchSize).ToList();
                var scored = Score(batch, reference.Skip(i).Take(batch.Count).ToList(), padId);
                lossSum += scored.Losses.sum().item<float>();
                marginSum += scored.Margins.sum().item<float>();
                ranked += scored.Margins.gt(0).sum().item<long>();
                var (ids, targets, _, n) = SftData.Collate([.. batch.Select(p => p.Chosen)], padId, Model.Device);
                correct += Model.Forward(ids).argmax(-1).eq(targets).logical_and(targets.ne(-100)).sum().item<long>();
                count += n;
            }
        }
        return new EvaluationResult(step, epoch, trainLoss, lossSum / val.Count, (double)correct / Math.Max(1, count), null,
            (double)ranked / val.Count, Options.Beta * marginSum / val.Count);
    }

    private string Fingerprint(int trainCount)
    {
        var o = Options.Training;
        return string.Create(CultureInfo.InvariantCulture,
            $"dpo;beta={Options.Beta};n={trainCount};bs={o.BatchSize};acc={o.GradientAccumulationSteps};ep={o.Epochs};max={o.MaxSteps};seed={o.Seed};lora={o.Lora?.Rank}");
    }
}

/// <summary>The DPO objective on summed sequence log-probabilities, as the reference implementations write it.</summary>
public static class DpoLoss
{
    /// <summary>
    /// Per pair: margin = (policyChosen - referenceChosen) - (policyRejected - referenceRejected) and
    /// loss = -log sigmoid(beta x margin), all [B]; gradients flow to the policy terms.
    /// </summary>
    public static (Tensor Losses, Tensor Margins) Compute(Tensor policyChosen, Tensor policyRejected, Tensor referenceChosen, Tensor referenceRejected, double beta)
    {
        using var scope = NewDisposeScope();
        var margins = policyChosen.sub(referenceChosen).sub(policyRejected.sub(referenceRejected));
        var losses = F.logsigmoid(margins.mul(beta)).neg();
        return (scope.MoveToOuter(losses), scope.MoveToOuter(margins));
    }
}

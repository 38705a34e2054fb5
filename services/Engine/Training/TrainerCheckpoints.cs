using System.Globalization;
using AspireTune.Engine.Checkpoints;
using AspireTune.Engine.Models;
using static TorchSharp.torch;

namespace AspireTune.Engine.Training;

/// <summary>
/// The checkpoint folder of a run, shared by <see cref="SftTrainer"/> and <see cref="DpoTrainer"/>: resumable
/// <c>checkpoint-NNNNNN</c> folders (trainable weights, AdamW moments, <see cref="TrainerState"/>) written whole or
/// not at all, the best weights of the run as <c>best-NNNNNN</c>, and exact resume from either.
/// </summary>
internal sealed class TrainerCheckpoints(int keepCheckpoints, ITrainingObserver? observer)
{
    internal const string StateFile = "trainer_state.json";
    private const string WeightsFile = "trainable.safetensors";
    private const string OptimizerFile = "optimizer.safetensors";
    private const string BestPrefix = "best-";

    public void Save(string root, TrainerState state, FlatParameters flat, FlatAdamW optimizer, double trainLoss)
    {
        var dir = Path.Combine(root, $"checkpoint-{state.Step:D6}");
        var tmp = dir + ".partial";
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        Directory.CreateDirectory(tmp);
        SaveFlat(tmp, flat.Snapshot());
        var opt = new List<(string, long[], float[])>();
        for (var i = 0; i < flat.Groups.Count; i++)
        {
            var name = flat.Groups[i].Name;
            opt.Add(($"exp_avg.{name}", [optimizer.ExpAvg[i].numel()], optimizer.ExpAvg[i].cpu().data<float>().ToArray()));
            opt.Add(($"exp_avg_sq.{name}", [optimizer.ExpAvgSq[i].numel()], optimizer.ExpAvgSq[i].cpu().data<float>().ToArray()));
        }
        SafeTensors.Write(Path.Combine(tmp, OptimizerFile), opt, SafeTensorDType.F32,
            new Dictionary<string, string> { ["step"] = optimizer.StepCount.ToString(CultureInfo.InvariantCulture) });
        state.Save(Path.Combine(tmp, StateFile));
        // A checkpoint appears complete or not at all: a kill while writing leaves only the .partial folder.
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
        Directory.Move(tmp, dir);
        foreach (var old in Directory.GetDirectories(root, "checkpoint-*").Where(p => !p.EndsWith(".partial", StringComparison.Ordinal))
                     .Order(StringComparer.Ordinal).SkipLast(keepCheckpoints))
            Directory.Delete(old, true);
        PruneBest(root, state.BestStep);
        observer?.OnCheckpoint(new CheckpointInfo(state.Step, dir, trainLoss, state.Evaluations.LastOrDefault()));
    }

    /// <summary>The best weights so far, named by step: a checkpoint refers to the best weights of its own time, not a later run's.</summary>
    private static void SaveBest(string root, int step, float[][] best)
    {
        SaveFlat(Path.Combine(root, $"{BestPrefix}{step:D6}"), best);
        PruneBest(root, step);
    }

    /// <summary>Best-weight folders stay only while the current run or a kept checkpoint refers to them.</summary>
    private static void PruneBest(string root, int currentBest)
    {
        var referenced = Directory.GetDirectories(root, "checkpoint-*").Where(p => !p.EndsWith(".partial", StringComparison.Ordinal))
            .Select(p => TrainerState.Load(Path.Combine(p, StateFile)).BestStep).Append(currentBest)
            .Select(b => $"{BestPrefix}{b:D6}").ToHashSet();
        foreach (var stale in Directory.GetDirectories(root, BestPrefix + "*").Where(p => !referenced.Contains(Path.GetFileName(p))))
            Directory.Delete(stale, true);
    }

    private static void SaveFlat(string dir, float[][] groups)
    {
        Directory.CreateDirectory(dir);
        SafeTensors.Write(Path.Combine(dir, WeightsFile), groups.Select((g, i) => ($"group.{i}", new long[] { g.Length }, g)), SafeTensorDType.F32);
    }

    internal static float[][] LoadFlat(string dir, FlatParameters flat)
    {
        var path = Path.Combine(dir, WeightsFile);
        var (entries, start, _) = SafeTensors.ReadHeader(path);
        var result = new float[flat.Groups.Count][];
        for (var i = 0; i < flat.Groups.Count; i++)
        {
            if (!entries.TryGetValue($"group.{i}", out var e) || e.ElementCount != flat.Groups[i].Data.numel())
                throw new ModelFormatException($"{path}: tensor 'group.{i}' is missing or does not match the model's trainable parameters", path, $"group.{i}");
            result[i] = SafeTensors.ReadFloats(path, start, e);
        }
        return result;
    }

    /// <summary>
    /// Restores weights and AdamW moments from a checkpoint-NNNNNN folder, or from a checkpoint directory's latest
    /// one; returns its state and the best weights it refers to. A checkpoint of other options or data is refused.
    /// </summary>
    public (TrainerState State, float[][]? Best) Resume(string from, FlatParameters flat, FlatAdamW optimizer, string fingerprint)
    {
        var dir = from;
        if (!File.Exists(Path.Combine(dir, StateFile)))
        {
            dir = Directory.Exists(from)
                ? Directory.GetDirectories(from, "checkpoint-*").Where(p => !p.EndsWith(".partial", StringComparison.Ordinal))
                    .Order(StringComparer.Ordinal).LastOrDefault() ?? throw new DirectoryNotFoundException($"{from}: no checkpoint to resume from")
                : throw new DirectoryNotFoundException($"{from}: checkpoint directory not found");
        }
        var state = TrainerState.Load(Path.Combine(dir, StateFile));
        if (state.OptionsFingerprint != fingerprint)
            throw new InvalidOperationException(
                $"{dir}: the checkpoint was made with other options or data ({state.OptionsFingerprint}); exact resume needs the same ({fingerprint})");
        flat.Restore(LoadFlat(dir, flat));
        var optPath = Path.Combine(dir, OptimizerFile);
        var (entries, start, meta) = SafeTensors.ReadHeader(optPath);
        using (no_grad())
        {
            for (var i = 0; i < flat.Groups.Count; i++)
            {
                var name = flat.Groups[i].Name;
                foreach (var (key, target) in new[] { ($"exp_avg.{name}", optimizer.ExpAvg[i]), ($"exp_avg_sq.{name}", optimizer.ExpAvgSq[i]) })
                {
                    if (!entries.TryGetValue(key, out var e) || e.ElementCount != target.numel())
                        throw new ModelFormatException($"{optPath}: tensor '{key}' is missing or has the wrong size", optPath, key);
                    using var t = tensor(SafeTensors.ReadFloats(optPath, start, e));
                    target.copy_(t);
                }
            }
        }
        optimizer.StepCount = int.Parse(meta?["step"]?.GetValue<string>() ?? state.Step.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
        var bestDir = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(dir))!, $"{BestPrefix}{state.BestStep:D6}");
        float[][]? best = null;
        if (state.BestStep > 0)
        {
            if (!File.Exists(Path.Combine(bestDir, WeightsFile)))
                throw new DirectoryNotFoundException($"{dir}: the best weights it refers to ({bestDir}) are missing");
            best = LoadFlat(bestDir, flat);
        }
        return (state, best);
    }

    /// <summary>
    /// Records an evaluation and reports it; when it improves on the best metric, the current weights become the best
    /// (in <paramref name="best"/> and as best-NNNNNN). Returns true once early stopping's patience has run out.
    /// </summary>
    public bool RecordEvaluation(SftOptions options, TrainerState state, EvaluationResult eval, FlatParameters flat, string root, ref float[][]? best)
    {
        state.Evaluations.Add(eval);
        observer?.OnEvaluation(eval);
        var higherIsBetter = options.EarlyStoppingMetric != EarlyStoppingMetric.ValidationLoss;
        var metric = options.EarlyStoppingMetric switch
        {
            EarlyStoppingMetric.MeanTokenAccuracy => eval.MeanTokenAccuracy,
            EarlyStoppingMetric.ExactMatch => eval.ExactMatch ?? 0,
            _ => eval.ValidationLoss,
        };
        var improved = state.BestMetric is not { } bm
            || (higherIsBetter ? metric - bm > options.EarlyStoppingMinDelta : bm - metric > options.EarlyStoppingMinDelta);
        if (improved)
        {
            state.BestMetric = metric;
            state.BestStep = eval.Step;
            state.EvalsWithoutImprovement = 0;
            best = flat.Snapshot();
            SaveBest(root, eval.Step, best);
        }
        else
        {
            state.EvalsWithoutImprovement++;
        }
        return options.EarlyStoppingPatience > 0 && state.EvalsWithoutImprovement >= options.EarlyStoppingPatience;
    }

    /// <summary>Puts the best weights back into the model and reports the run's outcome.</summary>
    public TrainingResult Finish(SftOptions options, TrainerState state, FlatParameters flat, float[][]? best, bool stoppedEarly, TimeSpan duration)
    {
        if (best is not null) flat.Restore(best);
        var (verdict, advice) = FitAnalysis.Assess(state.Evaluations, options.EarlyStoppingMinDelta);
        var result = new TrainingResult
        {
            Steps = state.Step, BestStep = state.BestStep, Best = state.Evaluations.FirstOrDefault(e => e.Step == state.BestStep),
            StoppedEarly = stoppedEarly, Verdict = verdict, Advice = advice, Evaluations = state.Evaluations, TrainLosses = state.TrainLosses,
            Duration = duration,
        };
        observer?.OnCompleted(result);
        return result;
    }
}

using System.ComponentModel.DataAnnotations;
using AspireTune.Engine.Models;

namespace AspireTune.Engine.Training;

/// <summary>Learning-rate schedule after warmup.</summary>
public enum LearningRateSchedule { Constant, Linear, Cosine }

/// <summary>What early stopping and best-checkpoint selection watch.</summary>
public enum EarlyStoppingMetric
{
    /// <summary>Validation loss (lower is better).</summary>
    ValidationLoss,
    /// <summary>Mean token accuracy on validation completions (higher is better).</summary>
    MeanTokenAccuracy,
    /// <summary>Exact match of the greedy generated answer (higher is better).</summary>
    ExactMatch,
}

/// <summary>One piece of an example's text; the loss covers the pieces marked <paramref name="Trained"/>.</summary>
public sealed record SftSegment(string Text, bool Trained);

/// <summary>
/// One supervised fine-tuning example. As a pair, the loss covers only the completion. Built with
/// <see cref="FromSegments"/>, the text is ordered segments (a conversation whose assistant turns are trained): the
/// last segment is the completion, everything before it the prompt, and the loss covers every trained segment. The
/// prompt and completion are what exact match generates from and compares with.
/// </summary>
public sealed record SftExample(string Prompt, string Completion)
{
    private IReadOnlyList<SftSegment>? _segments;

    /// <summary>The text in order: the pair's two segments (prompt untrained, completion trained), or those given to <see cref="FromSegments"/>.</summary>
    public IReadOnlyList<SftSegment> Segments
    {
        get
        {
            if (_segments is null) return [new(Prompt, false), new(Completion, true)];
            // A `with` that changed the prompt or the completion leaves segments that no longer spell them.
            if (_segments[^1].Text != Completion || string.Concat(_segments.Take(_segments.Count - 1).Select(s => s.Text)) != Prompt)
                throw new InvalidOperationException("the example's prompt or completion no longer matches its segments; build it again with FromSegments");
            return _segments;
        }
    }

    /// <summary>An example of ordered segments; the last is the completion (the final answer, trained or not).</summary>
    public static SftExample FromSegments(IReadOnlyList<SftSegment> segments)
    {
        if (segments.Count == 0) throw new ArgumentException("an example needs at least one segment", nameof(segments));
        return new SftExample(string.Concat(segments.Take(segments.Count - 1).Select(s => s.Text)), segments[^1].Text) { _segments = [.. segments] };
    }
}

/// <summary>Hyperparameters of a supervised fine-tuning run. Defaults suit a small model on a small task.</summary>
public sealed record SftOptions
{
    /// <summary>Passes over the training set; default 3.</summary>
    [Range(1, 10_000)] public int Epochs { get; init; } = 3;

    /// <summary>Optional cap on optimizer steps, overriding <see cref="Epochs"/> when smaller.</summary>
    [Range(1, int.MaxValue)] public int? MaxSteps { get; init; }

    /// <summary>Examples per micro-batch; default 8.</summary>
    [Range(1, 4096)] public int BatchSize { get; init; } = 8;

    /// <summary>Micro-batches per optimizer step; default 1.</summary>
    [Range(1, 1024)] public int GradientAccumulationSteps { get; init; } = 1;

    /// <summary>Peak learning rate; default 3e-4.</summary>
    [Range(1e-9, 10)] public double LearningRate { get; init; } = 3e-4;

    /// <summary>Linear warmup in optimizer steps; default 0.</summary>
    [Range(0, int.MaxValue)] public int WarmupSteps { get; init; }

    public LearningRateSchedule Schedule { get; init; } = LearningRateSchedule.Cosine;

    /// <summary>Decoupled (AdamW) weight decay on matrices; norms and biases are never decayed. Default 0.01.</summary>
    [Range(0, 10)] public double WeightDecay { get; init; } = 0.01;

    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.999;
    public double AdamEpsilon { get; init; } = 1e-8;

    /// <summary>Global gradient-norm clip; 0 turns clipping off. Default 1.0.</summary>
    [Range(0, 1e6)] public double MaxGradNorm { get; init; } = 1.0;

    /// <summary>Dropout for embeddings, attention and residual branches; null keeps the checkpoint's config values.</summary>
    [Range(0, 0.9)] public double? Dropout { get; init; }

    /// <summary>Evaluate on the validation split every N optimizer steps (and at the end); default 50.</summary>
    [Range(1, int.MaxValue)] public int EvalEverySteps { get; init; } = 50;

    /// <summary>Stop after this many evaluations without improvement; 0 turns early stopping off. Default 3.</summary>
    [Range(0, 1000)] public int EarlyStoppingPatience { get; init; } = 3;

    /// <summary>Smallest change that counts as an improvement; default 0.</summary>
    [Range(0, 1e6)] public double EarlyStoppingMinDelta { get; init; }

    public EarlyStoppingMetric EarlyStoppingMetric { get; init; } = EarlyStoppingMetric.ValidationLoss;

    /// <summary>Validation examples used for exact match (greedy generation is slower than scoring); default 64.</summary>
    [Range(0, 100_000)] public int ExactMatchExamples { get; init; } = 64;

    /// <summary>Seed for initialisation order, data order and dropout; default 42.</summary>
    public long Seed { get; init; } = 42;

    /// <summary>Train LoRA adapters instead of all weights; null = full fine-tuning.</summary>
    public LoraOptions? Lora { get; init; }

    /// <summary>Save a resumable checkpoint every N optimizer steps; 0 = only the final state. Default 100.</summary>
    [Range(0, int.MaxValue)] public int CheckpointEverySteps { get; init; } = 100;

    /// <summary>How many periodic checkpoints to keep on disk (oldest deleted first); default 2.</summary>
    [Range(1, 1000)] public int KeepCheckpoints { get; init; } = 2;

    /// <summary>
    /// Longest training sequence in tokens (every segment + end-of-text); a longer one loses its beginning, whole earlier
    /// turns where it can, so that the last trained segment survives. Default 512.
    /// </summary>
    [Range(2, 1 << 20)] public int MaxSequenceLength { get; init; } = 512;

    /// <summary>
    /// Packs several training examples into each row of <see cref="MaxSequenceLength"/> tokens (positions restart
    /// and attention stays within each example), so a batch holds real tokens instead of padding and every step has
    /// the same shape; <see cref="BatchSize"/> then counts rows. Evaluation is unchanged. Default false.
    /// </summary>
    public bool Packing { get; init; }
}

namespace AspireTune.Engine.Training;

/// <summary>Reported after every optimizer step.</summary>
/// <param name="Step">Optimizer step, 1-based.</param>
/// <param name="TotalSteps">Planned optimizer steps (early stopping may end sooner).</param>
/// <param name="Epoch">Fractional epoch reached.</param>
/// <param name="TrainLoss">Mean cross-entropy over the step's completion tokens (nats); for preference training the step's mean DPO loss.</param>
/// <param name="LearningRate">Learning rate applied at this step.</param>
/// <param name="GradNorm">Global gradient L2 norm before clipping.</param>
/// <param name="TokensPerSecond">Completion and prompt tokens (padding excluded) per second of this step.</param>
/// <param name="TrainedTokens">Tokens (padding excluded) of every step up to this one, resumed steps included.</param>
public sealed record TrainingProgress(int Step, int TotalSteps, double Epoch, double TrainLoss, double LearningRate,
    double GradNorm, double TokensPerSecond, long TrainedTokens = 0);

/// <summary>One evaluation on the validation split.</summary>
/// <param name="Step">Optimizer step evaluated after.</param>
/// <param name="Epoch">Fractional epoch reached.</param>
/// <param name="ValidationLoss">Mean cross-entropy over validation completion tokens (nats); for preference training the mean DPO loss of the validation pairs.</param>
/// <param name="MeanTokenAccuracy">Share of validation completion tokens (preferred answers, for preference training) predicted exactly (argmax).</param>
/// <param name="TrainLoss">Mean training loss over the steps since the previous evaluation.</param>
/// <param name="ExactMatch">Share of validation answers generated exactly (null when no examples were generated).</param>
/// <param name="RewardAccuracy">Preference training: share of validation pairs whose preferred answer gets the higher implicit reward.</param>
/// <param name="RewardMargin">Preference training: mean of beta x (preferred - non-preferred log-ratio against the reference), nats.</param>
public sealed record EvaluationResult(int Step, double Epoch, double TrainLoss, double ValidationLoss, double MeanTokenAccuracy,
    double? ExactMatch, double? RewardAccuracy = null, double? RewardMargin = null);

/// <summary>A resumable checkpoint written to disk.</summary>
public sealed record CheckpointInfo(int Step, string Directory, double TrainLoss, EvaluationResult? LastEvaluation);

/// <summary>What the curves say about fit.</summary>
public enum FitVerdict
{
    /// <summary>Validation improved and stayed near its best.</summary>
    GoodFit,
    /// <summary>Training loss kept falling while validation got worse.</summary>
    Overfitting,
    /// <summary>Training and validation both stayed nearly flat.</summary>
    Underfitting,
    /// <summary>Too few evaluations to tell.</summary>
    Inconclusive,
}

/// <summary>The outcome of a run; the model holds the weights of <see cref="BestStep"/>.</summary>
public sealed record TrainingResult
{
    public required int Steps { get; init; }
    public required int BestStep { get; init; }
    public required EvaluationResult? Best { get; init; }
    public required bool StoppedEarly { get; init; }
    public required FitVerdict Verdict { get; init; }
    public required string Advice { get; init; }
    public required IReadOnlyList<EvaluationResult> Evaluations { get; init; }

    /// <summary>Training loss of every optimizer step, in order (step 1 first).</summary>
    public required IReadOnlyList<double> TrainLosses { get; init; }

    public required TimeSpan Duration { get; init; }
}

/// <summary>Receives a run's progress; every member has an empty default so observers implement what they need.</summary>
public interface ITrainingObserver
{
    void OnProgress(TrainingProgress progress) { }
    void OnEvaluation(EvaluationResult evaluation) { }
    void OnCheckpoint(CheckpointInfo checkpoint) { }
    void OnCompleted(TrainingResult result) { }
}

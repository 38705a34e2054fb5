using AspireTune.Contracts.Common;
using AspireTune.FineTuning.Jobs;

namespace AspireTune.FineTuning.Workers;

/// <summary>One supervised example as the trainer sees it: the loss covers only the completion.</summary>
public sealed record PromptCompletion(string Prompt, string Completion);

/// <summary>Everything one training attempt needs. Directories are absolute.</summary>
public sealed record TrainingRun
{
    public required Guid JobId { get; init; }
    public required string BaseModelDirectory { get; init; }

    /// <summary>Where the trained model (Hugging Face layout) is written on success.</summary>
    public required string OutputDirectory { get; init; }

    /// <summary>Where resumable checkpoints go, one sub-directory per step.</summary>
    public required string CheckpointDirectory { get; init; }

    /// <summary>The checkpoint to continue from after a worker was lost; null starts from the base model.</summary>
    public string? ResumeFrom { get; init; }

    public required IReadOnlyList<PromptCompletion> Train { get; init; }
    public required IReadOnlyList<PromptCompletion> Validation { get; init; }
    public required Hyperparameters Hyperparameters { get; init; }
}

public sealed record StepReport(int Step, int TotalSteps, double Epoch, double TrainLoss, double LearningRate, double TokensPerSecond);

public sealed record EvaluationReport(int Step, double Epoch, double TrainLoss, double ValidLoss, double ValidMeanTokenAccuracy, double? ValidExactMatch);

public sealed record CheckpointReport(int Step, string Directory, double TrainLoss, double? ValidLoss, double? ValidMeanTokenAccuracy);

/// <summary>What a finished run reports; the output directory holds the weights of <see cref="BestStep"/>.</summary>
public sealed record TrainingOutcome
{
    public required int Steps { get; init; }
    public required int BestStep { get; init; }
    public required IReadOnlyList<MetricValue> BestMetrics { get; init; }
    public required bool StoppedEarly { get; init; }
    public required string FitVerdict { get; init; }
    public required string FitAdvice { get; init; }
    public required long TrainedTokens { get; init; }
}

/// <summary>Receives a run's progress, on the training thread; implementations must return quickly.</summary>
public interface ITrainingListener
{
    void OnStarted(int totalSteps, string device, int resumedFromStep);
    void OnStep(StepReport step);
    void OnEvaluation(EvaluationReport evaluation);
    void OnCheckpoint(CheckpointReport checkpoint);
}

/// <summary>Runs one training attempt on this machine's device; throws <see cref="OperationCanceledException"/> when cancelled.</summary>
public interface ITrainingBackend
{
    Task<TrainingOutcome> TrainAsync(TrainingRun run, ITrainingListener listener, CancellationToken ct);
}

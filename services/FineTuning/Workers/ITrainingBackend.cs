using AspireTune.Contracts.Common;
using AspireTune.Engine.Training;
using AspireTune.FineTuning.Jobs;

namespace AspireTune.FineTuning.Workers;

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

    /// <summary>Supervised examples; empty for a preference run.</summary>
    public IReadOnlyList<SftExample> Train { get; init; } = [];
    public IReadOnlyList<SftExample> Validation { get; init; } = [];

    /// <summary>The job's resolved hyperparameters, as the engine takes them (<see cref="Hyperparameters.ToSftOptions"/>).</summary>
    public required SftOptions Options { get; init; }

    /// <summary>A dpo job: its options (<see cref="Hyperparameters.ToDpoOptions"/>); null for supervised training.</summary>
    public DpoOptions? Dpo { get; init; }

    /// <summary>A dpo job's preference pairs; empty for supervised training.</summary>
    public IReadOnlyList<DpoExample> PreferenceTrain { get; init; } = [];
    public IReadOnlyList<DpoExample> PreferenceValidation { get; init; } = [];

    /// <summary>Optimizer steps planned for the whole run.</summary>
    public required int TotalSteps { get; init; }
}

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

/// <summary>Receives a run's progress as the engine reports it, on the training thread; implementations must return quickly.</summary>
public interface ITrainingListener : ITrainingObserver
{
    void OnStarted(int totalSteps, string device, int resumedFromStep);
}

/// <summary>Runs one training attempt on this machine's device; throws <see cref="OperationCanceledException"/> when cancelled.</summary>
public interface ITrainingBackend
{
    Task<TrainingOutcome> TrainAsync(TrainingRun run, ITrainingListener listener, CancellationToken ct);
}

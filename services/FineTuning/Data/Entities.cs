using System.Text.Json;
using AspireTune.Contracts.Common;
using AspireTune.FineTuning.Curation;
using AspireTune.FineTuning.Jobs;
using AspireTune.ServiceDefaults.Work;

namespace AspireTune.FineTuning.Data;

/// <summary>Job statuses, spelled as the hosted fine-tuning APIs spell them.</summary>
public static class JobStatus
{
    public const string ValidatingFiles = "validating_files";
    public const string Queued = "queued";
    public const string Running = "running";

    /// <summary>Paused on request: no worker trains it until it is resumed, from its last checkpoint.</summary>
    public const string Paused = "paused";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Cancelled = "cancelled";

    public static bool IsFinal(string status) => status is Succeeded or Failed or Cancelled;
}

/// <summary>Fine-tuning methods, spelled as the hosted APIs' <c>method.type</c>.</summary>
public static class TrainingMethods
{
    /// <summary>Supervised fine-tuning on chat or prompt/completion examples.</summary>
    public const string Supervised = "supervised";

    /// <summary>Direct Preference Optimization on preference pairs (input, preferred_output, non_preferred_output).</summary>
    public const string Dpo = "dpo";

    public static bool IsKnown(string method) => method is Supervised or Dpo;
}

/// <summary>An uploaded JSONL file (its bytes live in the artifact store).</summary>
public sealed class DataFile
{
    public required string Id { get; init; }
    public required string FileName { get; init; }
    public required string ArtifactId { get; init; }
    public required string Sha256 { get; init; }
    public required long Bytes { get; init; }
    public required string Format { get; init; }
    public required int Examples { get; init; }
    public DateTimeOffset CreatedAt { get; init; } = DateTimeOffset.UtcNow;
}

public sealed class FineTuningJob : ILeasedWork
{
    public required Guid Id { get; init; }
    public Guid? ExperimentId { get; set; }
    /// <summary>W3C trace context of the request or message that created the job: training continues that trace.</summary>
    public string? TraceParent { get; set; }
    public required string BaseModel { get; set; }
    public required string Status { get; set; }

    /// <summary>The training method, <see cref="TrainingMethods"/>: supervised (the default) or dpo.</summary>
    public string Method { get; set; } = TrainingMethods.Supervised;
    public required string TrainingArtifactId { get; set; }
    public required string TrainingSha256 { get; set; }
    public long TrainingBytes { get; set; }
    public string? TrainingFileId { get; set; }
    public string? ValidationArtifactId { get; set; }
    public string? ValidationSha256 { get; set; }
    public long ValidationBytes { get; set; }
    public string? ValidationFileId { get; set; }
    public string? TestArtifactId { get; set; }
    public string? TestSha256 { get; set; }
    public long TestBytes { get; set; }
    public string? TestFileId { get; set; }
    public string? Suffix { get; set; }

    /// <summary>Caller-defined key-value pairs (JSON object of strings), as the hosted APIs' <c>metadata</c>.</summary>
    public Dictionary<string, string>? Metadata { get; set; }

    /// <summary>The hyperparameters as requested (name to text, "auto" allowed).</summary>
    public required Dictionary<string, string> RequestedHyperparameters { get; set; }

    /// <summary>The values training used, "auto" resolved; set when the gate passes.</summary>
    public Hyperparameters? ResolvedHyperparameters { get; set; }

    public QualityReport? QualityReport { get; set; }

    /// <summary>Claim-check id of the curated training examples the trainer reads.</summary>
    public string? CuratedArtifactId { get; set; }
    public string? CuratedSha256 { get; set; }
    public long CuratedBytes { get; set; }

    public string? FineTunedModel { get; set; }
    public string? ErrorCode { get; set; }
    public string? ErrorMessage { get; set; }
    public int Step { get; set; }
    public int TotalSteps { get; set; }
    public long TrainedTokens { get; set; }
    public List<MetricValue>? BestMetrics { get; set; }
    public string? FitVerdict { get; set; }
    public string? FitAdvice { get; set; }
    public bool CancelRequested { get; set; }

    /// <summary>Worker holding the job; with <see cref="LeaseExpiresAt"/>, the lease that makes a job run on one worker at a time.</summary>
    public string? LeaseOwner { get; set; }
    public DateTimeOffset? LeaseExpiresAt { get; set; }

    /// <summary>Times a worker claimed the job (1 on a clean run, more after a worker was lost).</summary>
    public int Attempts { get; set; }

    /// <summary>Wall-clock seconds of training accumulated over attempts.</summary>
    public double TrainingSeconds { get; set; }

    public DateTimeOffset CreatedAt { get; init; } = DateTimeOffset.UtcNow;
    public DateTimeOffset? StartedAt { get; set; }
    public DateTimeOffset? FinishedAt { get; set; }
}

/// <summary>One entry of a job's events list.</summary>
public sealed class JobEvent
{
    public long Id { get; init; }
    public required Guid JobId { get; init; }
    public required string Level { get; init; }
    public required string Type { get; init; }
    public required string Message { get; init; }
    public JsonElement? Data { get; init; }
    public DateTimeOffset CreatedAt { get; init; } = DateTimeOffset.UtcNow;
}

/// <summary>A checkpoint written during training (files under the job's folder).</summary>
public sealed class JobCheckpoint
{
    public required string Id { get; init; }
    public required Guid JobId { get; init; }
    public required int Step { get; init; }
    public required double TrainLoss { get; init; }
    public double? ValidLoss { get; init; }
    public double? ValidMeanTokenAccuracy { get; init; }

    /// <summary>Directory, relative to the data folder.</summary>
    public required string Path { get; init; }
    public DateTimeOffset CreatedAt { get; init; } = DateTimeOffset.UtcNow;
}

/// <summary>One row of a job's metrics (every logged step).</summary>
public sealed class JobMetric
{
    public long Id { get; init; }
    public required Guid JobId { get; init; }
    public required int Step { get; init; }
    public required double Epoch { get; init; }
    public required double TrainLoss { get; init; }
    public double? ValidLoss { get; init; }
    public double? ValidMeanTokenAccuracy { get; init; }
    public required double LearningRate { get; init; }
    public required double TokensPerSecond { get; init; }
}

/// <summary>Where a registered model came from.</summary>
public static class ModelSource
{
    public const string BuiltIn = "built_in";
    public const string FineTuned = "fine_tuned";
    public const string Imported = "imported";

    /// <summary>A training checkpoint of a job, served on demand (never a registry row): <see cref="Registry.CheckpointModels"/>.</summary>
    public const string Checkpoint = "checkpoint";
}

/// <summary>A model in the registry: served on <c>/v1</c> under <see cref="Id"/>.</summary>
public sealed class RegisteredModel
{
    public required string Id { get; init; }
    public required string Source { get; init; }

    /// <summary>Hugging Face directory, relative to the data folder.</summary>
    public required string Path { get; set; }
    public string? Architecture { get; set; }
    public long Parameters { get; set; }
    public bool HasTokenizer { get; set; }
    public string? BaseModel { get; init; }
    public Guid? JobId { get; init; }
    public string? DatasetSha256 { get; init; }
    public Hyperparameters? Hyperparameters { get; init; }
    public List<MetricValue>? BestMetrics { get; init; }
    public DateTimeOffset CreatedAt { get; init; } = DateTimeOffset.UtcNow;
}

using AspireTune.Contracts.Common;
using AspireTune.Contracts.Evaluation;
using AspireTune.Evaluation.Runs;
using AspireTune.ServiceDefaults.Work;

namespace AspireTune.Evaluation.Data;

/// <summary>A hosted or local model reachable over the OpenAI API. The key is only a configuration key name.</summary>
public sealed class ModelEndpointEntity
{
    public required string Id { get; set; }
    public EndpointKind Kind { get; set; }
    public required string BaseUrl { get; set; }
    public required string Model { get; set; }
    public string? ApiKeySecret { get; set; }
    public double InputPricePerMillion { get; set; }
    public double OutputPricePerMillion { get; set; }
    public int MaxConcurrency { get; set; } = 4;
    public int? RequestsPerMinute { get; set; }

    /// <summary>Context window in tokens, when registered; else the served model's, a known default, or 8,192.</summary>
    public int? ContextLength { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
}

/// <summary>One immutable version of a named prompt template.</summary>
public sealed class PromptVersionEntity
{
    public required string Name { get; set; }
    public int Version { get; set; }
    public required string Template { get; set; }
    public string? System { get; set; }
    public string? Description { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}

/// <summary>A label (e.g. <c>production</c>) that points at one version of a prompt and can be moved.</summary>
public sealed class PromptLabelEntity
{
    public required string Name { get; set; }
    public required string Label { get; set; }
    public int Version { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
}

/// <summary>An evaluation dataset (JSONL) stored in the artifact store, identified by its SHA-256.</summary>
public sealed class DatasetEntity
{
    public required string Sha256 { get; set; }
    public required string Name { get; set; }
    public required string ArtifactId { get; set; }
    public long Length { get; set; }
    public int Items { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}

public enum RunStatus
{
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

/// <summary>An evaluation run: its specification, state and, once finished, its summary (JSON columns).</summary>
public sealed class RunEntity : ILeasedWork
{
    public Guid Id { get; set; }
    public Guid? ExperimentId { get; set; }
    /// <summary>W3C trace context of the request or message that created the run: its execution continues that trace.</summary>
    public string? TraceParent { get; set; }
    public RunStatus Status { get; set; }
    public required RunSpec Spec { get; set; }
    public required string DatasetArtifactId { get; set; }
    public required string DatasetSha256 { get; set; }
    public long DatasetLength { get; set; }
    public int TotalCalls { get; set; }
    public string? Error { get; set; }
    public List<EvaluationSummary>? Summaries { get; set; }
    public ArtifactRef? ResultsArtifact { get; set; }
    public string? CancelledBy { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? StartedAt { get; set; }
    public DateTimeOffset? FinishedAt { get; set; }

    /// <summary>The worker executing the run (<see cref="WorkerIdentity"/>), while its lease lasts.</summary>
    public string? LeaseOwner { get; set; }

    /// <summary>Until when <see cref="LeaseOwner"/> holds the run; renewed by its heartbeat, free once past.</summary>
    public DateTimeOffset? LeaseExpiresAt { get; set; }
}

/// <summary>The outcome of one call: item x repeat for one prompt x endpoint pair of a run.</summary>
public sealed class ItemResultEntity
{
    public long Id { get; set; }
    public Guid RunId { get; set; }
    public int Pair { get; set; }
    public int Item { get; set; }
    public int Repeat { get; set; }
    public string? Output { get; set; }
    public Dictionary<string, double>? Scores { get; set; }
    public string? Predicted { get; set; }
    public double LatencyMs { get; set; }
    public int InputTokens { get; set; }
    public int OutputTokens { get; set; }
    public double CostUsd { get; set; }
    public bool Cached { get; set; }
    public string? Error { get; set; }
    public string? ScoreErrors { get; set; }

    /// <summary>Examples the prompt showed after fitting it to the model's context; null when it asks for none.</summary>
    public int? ExamplesShown { get; set; }

    /// <summary>Examples retrieval offered for the prompt; null when it asks for none.</summary>
    public int? ExamplesRetrieved { get; set; }

    /// <summary>True when the input itself had to be cut to fit the context.</summary>
    public bool? InputTruncated { get; set; }
}

/// <summary>A model answer kept so that the same call (endpoint, prompt, parameters) is never paid twice.</summary>
public sealed class CachedResponseEntity
{
    public required string Key { get; set; }
    public required string Output { get; set; }
    public int InputTokens { get; set; }
    public int OutputTokens { get; set; }
    public double LatencyMs { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}

using AspireTune.Contracts.Common;

namespace AspireTune.Contracts.Comparison;

/// <summary>Command: run the four-step workflow (prompting, retrieval, fine-tuning, comparison) on a dataset.</summary>
public sealed record StartExperiment
{
    /// <summary>Experiment id; the correlation id of every message the experiment causes.</summary>
    public required Guid ExperimentId { get; init; }

    /// <summary>Human-readable name.</summary>
    public required string Name { get; init; }

    /// <summary>The labelled dataset (JSONL with <c>input</c> and <c>expected</c>) in the artifact store.</summary>
    public required ArtifactRef Dataset { get; init; }

    /// <summary>Candidate kinds to include: <c>prompted</c>, <c>retrieval</c>, <c>fine-tuned</c>, <c>knn</c>.</summary>
    public IReadOnlyList<string> Candidates { get; init; } = ["prompted", "retrieval", "fine-tuned", "knn"];

    /// <summary>Model endpoint ids (Evaluation service) of the hosted foundation models to prompt.</summary>
    public IReadOnlyList<string> ModelEndpoints { get; init; } = [];

    /// <summary>Base model id (FineTuning registry) to fine-tune.</summary>
    public string? BaseModel { get; init; }

    /// <summary>Fraction of the curated dataset held out for the final comparison (0-1).</summary>
    public double TestFraction { get; init; } = 0.2;

    /// <summary>Seed for splits and sampling.</summary>
    public int Seed { get; init; } = 42;

    /// <summary>
    /// Largest accuracy loss against the most accurate candidate that still counts as non-inferior, as a fraction
    /// (0.02 = 2 points); null: the Comparison service's default (<c>Comparison:NonInferiorityMargin</c>).
    /// </summary>
    public double? NonInferiorityMargin { get; init; }

    /// <summary>What the candidates are asked to do; classification when absent.</summary>
    public ExperimentTask Task { get; init; }

    /// <summary>Generation: what to do with each input, written into the prompts; null: a generic instruction.</summary>
    public string? Instruction { get; init; }

    /// <summary>Generation: Evaluation endpoint id of the judge model that also scores answers; null: no judge.</summary>
    public string? JudgeEndpoint { get; init; }
}

/// <summary>Event: the experiment was accepted and its dataset curated and split.</summary>
public sealed record ExperimentStarted
{
    /// <summary>Experiment id (correlation id).</summary>
    public required Guid ExperimentId { get; init; }

    /// <summary>Experiment name.</summary>
    public required string Name { get; init; }

    /// <summary>SHA-256 of the dataset as received.</summary>
    public required string DatasetSha256 { get; init; }

    /// <summary>When the experiment started (UTC).</summary>
    public required DateTimeOffset StartedAt { get; init; }
}

/// <summary>Event: one step of the workflow finished.</summary>
public sealed record ExperimentStepCompleted
{
    /// <summary>Experiment id (correlation id).</summary>
    public required Guid ExperimentId { get; init; }

    /// <summary>Step name: <c>curation</c>, <c>prompting</c>, <c>retrieval</c>, <c>fine-tuning</c>, <c>comparison</c>.</summary>
    public required string Step { get; init; }

    /// <summary>Headline metrics of the step.</summary>
    public IReadOnlyList<MetricValue> Metrics { get; init; } = [];

    /// <summary>Detailed output of the step, when it has one.</summary>
    public ArtifactRef? Artifact { get; init; }

    /// <summary>When the step finished (UTC).</summary>
    public required DateTimeOffset CompletedAt { get; init; }
}

/// <summary>Event: the experiment finished with a decision.</summary>
public sealed record ExperimentCompleted
{
    /// <summary>Experiment id (correlation id).</summary>
    public required Guid ExperimentId { get; init; }

    /// <summary>The recommended candidate, e.g. <c>fine-tuned:spam-gpt2-small</c>.</summary>
    public required string Winner { get; init; }

    /// <summary>The written decision: why this candidate, at what quality, latency and cost.</summary>
    public required string Decision { get; init; }

    /// <summary>Candidates on the quality/latency/cost Pareto front.</summary>
    public IReadOnlyList<string> ParetoFront { get; init; } = [];

    /// <summary>The HTML report (charts) in the artifact store.</summary>
    public ArtifactRef? ReportHtml { get; init; }

    /// <summary>The JSON report in the artifact store.</summary>
    public ArtifactRef? ReportJson { get; init; }

    /// <summary>When the experiment finished (UTC).</summary>
    public required DateTimeOffset CompletedAt { get; init; }
}

/// <summary>Event: the experiment stopped without a decision.</summary>
public sealed record ExperimentFailed
{
    /// <summary>Experiment id (correlation id).</summary>
    public required Guid ExperimentId { get; init; }

    /// <summary>The step that failed.</summary>
    public required string Step { get; init; }

    /// <summary>What went wrong, for people (never contains secrets).</summary>
    public required string Reason { get; init; }

    /// <summary>When it failed (UTC).</summary>
    public required DateTimeOffset FailedAt { get; init; }
}

using System.ComponentModel.DataAnnotations;
using AspireTune.Comparison.Analysis;
using AspireTune.Contracts.Common;
using AspireTune.Contracts.Comparison;

namespace AspireTune.Comparison.Data;

public enum ExperimentStatus
{
    /// <summary>Accepted by the API, StartExperiment sent; nothing run yet.</summary>
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

public enum CandidateStatus
{
    Pending,
    Tuning,
    Evaluating,
    Succeeded,
    Failed,
    Skipped,
}

/// <summary>An experiment and its workflow state; every consumer that moves it forward saves it (optimistic concurrency).</summary>
public sealed class Experiment
{
    public Guid Id { get; set; }
    [MaxLength(200)] public required string Name { get; set; }
    public ExperimentStatus Status { get; set; }
    [MaxLength(40)] public string Step { get; set; } = "curation";
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
    public DateTimeOffset? CompletedAt { get; set; }

    /// <summary>The StartExperiment command as received.</summary>
    public required StartExperiment Request { get; set; }
    [MaxLength(64)] public string? DatasetSha256 { get; set; }
    public CurationReport? Curation { get; set; }
    public ArtifactRef? TrainArtifact { get; set; }
    public ArtifactRef? ValidationArtifact { get; set; }
    public ArtifactRef? TestArtifact { get; set; }
    [MaxLength(200)] public string? Collection { get; set; }
    public Guid? FineTuningJobId { get; set; }
    [MaxLength(200)] public string? FineTunedModel { get; set; }
    /// <summary>How long the fine-tuning job ran (hours), from <c>TrainingCompleted</c>: the training cost's measure.</summary>
    public double? TrainingHours { get; set; }
    /// <summary>The fine-tuned candidate's loss curves and fit verdict, from <c>TrainingCompleted</c>.</summary>
    public TrainingFit? Training { get; set; }

    [MaxLength(200)] public string? Winner { get; set; }
    public string? Decision { get; set; }
    public ComparisonResult? Result { get; set; }
    public ArtifactRef? ReportHtmlArtifact { get; set; }
    public ArtifactRef? ReportJsonArtifact { get; set; }
    public string? Error { get; set; }

    /// <summary>Concurrency token: two consumers advancing the same experiment never overwrite each other.</summary>
    [ConcurrencyCheck] public int Version { get; set; }

    public List<Candidate> Candidates { get; set; } = [];
    public List<ExperimentLogEntry> Log { get; set; } = [];

    public void Touch(DateTimeOffset now)
    {
        UpdatedAt = now;
        Version++;
    }
}

/// <summary>One contender of the comparison: its evaluation run and results on the test split.</summary>
public sealed class Candidate
{
    public Guid ExperimentId { get; set; }
    [MaxLength(200)] public required string Name { get; set; }
    /// <summary>Stored by its wire name: <c>prompted</c>, <c>retrieval</c>, <c>fine-tuned</c> or <c>knn</c>.</summary>
    [MaxLength(40)] public required CandidateKind Kind { get; set; }
    public CandidateStatus Status { get; set; }
    /// <summary>Model endpoint id in the Evaluation service, when the candidate is a model.</summary>
    [MaxLength(200)] public string? ModelEndpoint { get; set; }
    /// <summary>Prompt versions tried (tuning round) and then kept, as <c>name@version</c>.</summary>
    [MaxLength(2000)] public string? Prompts { get; set; }
    public Guid? TuningRunId { get; set; }
    public Guid? TestRunId { get; set; }
    /// <summary>Per-item outcomes on the test split.</summary>
    public List<ItemOutcome>? Outcomes { get; set; }
    public string? Error { get; set; }
}

/// <summary>What happened, in order: shown by the API and the CLI.</summary>
public sealed class ExperimentLogEntry
{
    public long Id { get; set; }
    public Guid ExperimentId { get; set; }
    public DateTimeOffset At { get; set; }
    [MaxLength(40)] public required string Step { get; set; }
    [MaxLength(4000)] public required string Message { get; set; }
}

using AspireTune.Contracts.Common;

namespace AspireTune.Contracts.FineTuning;

/// <summary>Command: train a model. Consumed by exactly one fine-tuning worker.</summary>
public sealed record StartFineTuning
{
    /// <summary>Job id; the correlation id of every training event.</summary>
    public required Guid JobId { get; init; }

    /// <summary>The experiment, when started by the workflow.</summary>
    public Guid? ExperimentId { get; init; }

    /// <summary>Base model id in the registry (e.g. <c>gpt2-tiny</c>).</summary>
    public required string BaseModel { get; init; }

    /// <summary>Training data (JSONL: chat <c>messages</c> or <c>prompt</c>/<c>completion</c>).</summary>
    public required ArtifactRef TrainingFile { get; init; }

    /// <summary>Validation data, same format; when absent a slice of the training data is held out.</summary>
    public ArtifactRef? ValidationFile { get; init; }

    /// <summary>
    /// Held-out test data (same format), when known: training examples whose prompt matches a test prompt
    /// (exact or near duplicate) are removed before training, and the job fails when too many do (leakage).
    /// </summary>
    public ArtifactRef? TestFile { get; init; }

    /// <summary>Name to register the resulting model under; generated when absent.</summary>
    public string? Suffix { get; init; }

    /// <summary>Hyperparameters as name/value text (e.g. <c>n_epochs=3</c>, <c>learning_rate=auto</c>).</summary>
    public IReadOnlyDictionary<string, string> Hyperparameters { get; init; } = new Dictionary<string, string>();

    /// <summary>
    /// <c>supervised</c> (default) or <c>dpo</c>: preference fine-tuning, whose files hold pairs in the hosted format
    /// (<c>input</c>, <c>preferred_output</c>, <c>non_preferred_output</c>) and whose hyperparameters may include <c>beta</c>.
    /// </summary>
    public string Method { get; init; } = "supervised";
}

/// <summary>Event: a worker picked the job up and training began.</summary>
public sealed record TrainingStarted
{
    /// <summary>Job id (correlation id).</summary>
    public required Guid JobId { get; init; }

    /// <summary>The experiment, when the job belongs to one.</summary>
    public Guid? ExperimentId { get; init; }

    /// <summary>Base model id.</summary>
    public required string BaseModel { get; init; }

    /// <summary>Worker that runs the job (host name and process).</summary>
    public required string Worker { get; init; }

    /// <summary>Device: <c>cuda:0</c> or <c>cpu</c>.</summary>
    public required string Device { get; init; }

    /// <summary>Total optimizer steps planned.</summary>
    public required int TotalSteps { get; init; }

    /// <summary>True when resuming from a checkpoint after a worker stopped.</summary>
    public bool Resumed { get; init; }

    /// <summary>When training started (UTC).</summary>
    public required DateTimeOffset StartedAt { get; init; }
}

/// <summary>Event: training progress (throttled; at most a few per second per job).</summary>
public sealed record TrainingProgressed
{
    /// <summary>Job id (correlation id).</summary>
    public required Guid JobId { get; init; }

    /// <summary>The experiment, when the job belongs to one.</summary>
    public Guid? ExperimentId { get; init; }

    /// <summary>Optimizer step (1-based).</summary>
    public required int Step { get; init; }

    /// <summary>Total optimizer steps planned.</summary>
    public required int TotalSteps { get; init; }

    /// <summary>Epoch, fractional (e.g. 1.5 is half-way through the second epoch).</summary>
    public required double Epoch { get; init; }

    /// <summary>Training loss (mean over the steps since the last event).</summary>
    public required double TrainLoss { get; init; }

    /// <summary>Validation loss, on steps where validation ran.</summary>
    public double? ValidLoss { get; init; }

    /// <summary>Validation mean token accuracy, on steps where validation ran.</summary>
    public double? ValidMeanTokenAccuracy { get; init; }

    /// <summary>
    /// Task metric on the validation split, when computed: exact match of the generated answer (supervised), or the
    /// reward accuracy (share of pairs whose preferred answer the model now favours more than its base did) of a dpo job.
    /// </summary>
    public double? ValidMetric { get; init; }

    /// <summary>Learning rate at this step.</summary>
    public required double LearningRate { get; init; }

    /// <summary>Training throughput in tokens per second.</summary>
    public required double TokensPerSecond { get; init; }
}

/// <summary>Event: a checkpoint was written.</summary>
public sealed record CheckpointSaved
{
    /// <summary>Job id (correlation id).</summary>
    public required Guid JobId { get; init; }

    /// <summary>The experiment, when the job belongs to one.</summary>
    public Guid? ExperimentId { get; init; }

    /// <summary>Optimizer step of the checkpoint.</summary>
    public required int Step { get; init; }

    /// <summary>Training loss at the checkpoint.</summary>
    public required double TrainLoss { get; init; }

    /// <summary>Validation loss at the checkpoint, when validation ran.</summary>
    public double? ValidLoss { get; init; }

    /// <summary>Validation mean token accuracy, when validation ran.</summary>
    public double? ValidMeanTokenAccuracy { get; init; }

    /// <summary>The checkpoint id (e.g. <c>ftckpt-...</c>).</summary>
    public required string CheckpointId { get; init; }
}

/// <summary>Event: training succeeded and the model is registered and served. The event most teams consume.</summary>
public sealed record TrainingCompleted
{
    /// <summary>Job id (correlation id).</summary>
    public required Guid JobId { get; init; }

    /// <summary>The experiment, when the job belongs to one.</summary>
    public Guid? ExperimentId { get; init; }

    /// <summary>Registered model id, usable as <c>model</c> on the <c>/v1</c> API.</summary>
    public required string ModelId { get; init; }

    /// <summary>Base model id.</summary>
    public required string BaseModel { get; init; }

    /// <summary>SHA-256 of the training file.</summary>
    public required string DatasetSha256 { get; init; }

    /// <summary>Metrics of the best checkpoint (valid_loss, valid_mean_token_accuracy, valid_exact_match...).</summary>
    public required IReadOnlyList<MetricValue> BestMetrics { get; init; }

    /// <summary>Step of the best checkpoint (restored when early stopping fired).</summary>
    public required int BestStep { get; init; }

    /// <summary>Base URL of the OpenAI-compatible API that serves the model (ends in <c>/v1</c>).</summary>
    public required string ServedEndpoint { get; init; }

    /// <summary>Fitting verdict: <c>good_fit</c>, <c>overfitting</c>, <c>underfitting</c>, with the remedy in <see cref="FitAdvice"/>.</summary>
    public string? FitVerdict { get; init; }

    /// <summary>What the curves suggest doing next, for people.</summary>
    public string? FitAdvice { get; init; }

    /// <summary>
    /// The training and validation loss curves the verdict was read from, in step order: every validation point, and
    /// training-only points thinned to at most <see cref="TrainingCurvePoint.MaxPoints"/> in all.
    /// </summary>
    public IReadOnlyList<TrainingCurvePoint> Curve { get; init; } = [];

    /// <summary>Wall-clock training duration.</summary>
    public required TimeSpan Duration { get; init; }

    /// <summary>When training finished (UTC).</summary>
    public required DateTimeOffset CompletedAt { get; init; }
}

/// <summary>Event: training failed (bad data, out of memory, diverged...).</summary>
public sealed record TrainingFailed
{
    /// <summary>Job id (correlation id).</summary>
    public required Guid JobId { get; init; }

    /// <summary>The experiment, when the job belongs to one.</summary>
    public Guid? ExperimentId { get; init; }

    /// <summary>Machine-readable code, e.g. <c>invalid_training_file</c>, <c>training_error</c>.</summary>
    public required string Code { get; init; }

    /// <summary>What went wrong (never contains secrets).</summary>
    public required string Reason { get; init; }

    /// <summary>When it failed (UTC).</summary>
    public required DateTimeOffset FailedAt { get; init; }
}

/// <summary>Event: a user cancelled the job.</summary>
public sealed record TrainingCancelled
{
    /// <summary>Job id (correlation id).</summary>
    public required Guid JobId { get; init; }

    /// <summary>The experiment, when the job belongs to one.</summary>
    public Guid? ExperimentId { get; init; }

    /// <summary>Last completed step before cancellation.</summary>
    public required int Step { get; init; }

    /// <summary>When it was cancelled (UTC).</summary>
    public required DateTimeOffset CancelledAt { get; init; }
}

/// <summary>
/// Event: a user paused the job; no worker trains it until it is resumed. Published when the pause is committed: a job
/// not yet training is paused at once, a running one's worker stops at its next heartbeat, keeping its checkpoints
/// (it may record up to one heartbeat's steps more; <see cref="TrainingResumed.CheckpointStep"/> says where training continues).
/// </summary>
public sealed record TrainingPaused
{
    /// <summary>Job id (correlation id).</summary>
    public required Guid JobId { get; init; }

    /// <summary>The experiment, when the job belongs to one.</summary>
    public Guid? ExperimentId { get; init; }

    /// <summary>The status it was paused in: <c>validating_files</c>, <c>queued</c> or <c>running</c>.</summary>
    public required string PausedFrom { get; init; }

    /// <summary>Last completed optimizer step recorded when the pause was committed (0 before training).</summary>
    public required int Step { get; init; }

    /// <summary>The latest checkpoint then (e.g. <c>ftckpt-...</c>), which a resume would continue from; null when there is none.</summary>
    public string? CheckpointId { get; init; }

    /// <summary>Optimizer step of <see cref="CheckpointId"/>; null when there is none.</summary>
    public int? CheckpointStep { get; init; }

    /// <summary>The account that asked (its API-key account or JWT name); null when the host runs without authentication (loopback only).</summary>
    public string? RequestedBy { get; init; }

    /// <summary>When the pause was committed (UTC).</summary>
    public required DateTimeOffset PausedAt { get; init; }
}

/// <summary>Event: a user resumed a paused job; a worker continues it from its latest checkpoint (or from the base model when it has none).</summary>
public sealed record TrainingResumed
{
    /// <summary>Job id (correlation id).</summary>
    public required Guid JobId { get; init; }

    /// <summary>The experiment, when the job belongs to one.</summary>
    public Guid? ExperimentId { get; init; }

    /// <summary>
    /// The status it went back to: <c>queued</c>; <c>running</c> when its worker had not stopped for the pause yet (it
    /// goes on training); or <c>validating_files</c> for a job paused before its files were validated (validation
    /// continues, then it is queued).
    /// </summary>
    public required string Status { get; init; }

    /// <summary>Last completed optimizer step of the job (0 when it never trained).</summary>
    public required int Step { get; init; }

    /// <summary>The checkpoint training continues from (e.g. <c>ftckpt-...</c>); null: from the base model.</summary>
    public string? CheckpointId { get; init; }

    /// <summary>Optimizer step of <see cref="CheckpointId"/>; null when there is none.</summary>
    public int? CheckpointStep { get; init; }

    /// <summary>The account that asked; null when the host runs without authentication (loopback only).</summary>
    public string? RequestedBy { get; init; }

    /// <summary>When the resume was committed (UTC).</summary>
    public required DateTimeOffset ResumedAt { get; init; }
}

/// <summary>One point of a job's loss curves.</summary>
public sealed record TrainingCurvePoint
{
    /// <summary>Most points a curve carries in an event.</summary>
    public const int MaxPoints = 400;

    /// <summary>Optimizer step.</summary>
    public required int Step { get; init; }

    /// <summary>Epoch, fractional.</summary>
    public required double Epoch { get; init; }

    /// <summary>Training loss (mean over the steps since the previous point).</summary>
    public required double TrainLoss { get; init; }

    /// <summary>Validation loss, on steps where validation ran.</summary>
    public double? ValidLoss { get; init; }
}

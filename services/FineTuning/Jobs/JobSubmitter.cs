using System.Text.Json;
using System.Text.RegularExpressions;
using AspireTune.Contracts.FineTuning;
using AspireTune.FineTuning.Consumers;
using AspireTune.FineTuning.Curation;
using AspireTune.FineTuning.Data;
using AspireTune.ServiceDefaults.Messaging;
using MassTransit;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.FineTuning.Jobs;

/// <summary>A job as either API asks for it, already read from its own request shape.</summary>
public sealed record JobSubmission
{
    public string? Model { get; init; }
    public string? TrainingFile { get; init; }
    public string? ValidationFile { get; init; }
    public string? TestFile { get; init; }
    public string? Suffix { get; init; }

    /// <summary><see cref="TrainingMethods.Supervised"/> (default) or <see cref="TrainingMethods.Dpo"/>, whose files must be preference pairs.</summary>
    public string Method { get; init; } = TrainingMethods.Supervised;

    /// <summary>Name to text ("auto" allowed), checked against <see cref="HyperparameterSpec.All"/>.</summary>
    public IReadOnlyDictionary<string, string> Hyperparameters { get; init; } = new Dictionary<string, string>();
    public Guid? ExperimentId { get; init; }

    /// <summary>Up to 16 caller-defined key-value pairs (the hosted API's <c>metadata</c>), stored as given.</summary>
    public IReadOnlyDictionary<string, string>? Metadata { get; init; }
}

/// <summary>What submitting gave: the job, the field errors, or a broker that did not take the command.</summary>
public sealed record SubmissionResult(FineTuningJob? Job, Dictionary<string, string[]> Errors);

/// <summary>
/// Creating a job, shared by <c>/api/fine-tuning/jobs</c> and the OpenAI-shaped <c>/v1/fine_tuning/jobs</c>: one
/// set of checks, one row in the jobs table, one <c>StartFineTuning</c> command, whichever route a job came by.
/// </summary>
public static partial class JobSubmitter
{
    internal static readonly Uri StartFineTuningQueue = new($"queue:{StartFineTuningConsumerDefinition.QueueName}");

    [GeneratedRegex("^[a-z0-9-]{1,40}$")]
    private static partial Regex SuffixPattern();

    public static async Task<SubmissionResult> SubmitAsync(JobSubmission request, FineTuningDbContext db, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        if (string.IsNullOrWhiteSpace(request.Model))
            errors["model"] = ["The base model is required (e.g. \"aspiretune-tiny\"; GET /api/models lists them)."];
        else if (!await db.Models.AnyAsync(m => m.Id == request.Model, ct))
            errors["model"] = [$"The base model '{request.Model}' is not registered. GET /api/models lists the models; POST /api/models/import adds one."];

        var files = new Dictionary<string, DataFile>();
        foreach (var (key, id, required) in new[] { ("training_file", request.TrainingFile, true), ("validation_file", request.ValidationFile, false), ("test_file", request.TestFile, false) })
        {
            if (string.IsNullOrWhiteSpace(id))
            {
                if (required)
                    errors[key] = ["The training file is required: upload it and pass its id."];
                continue;
            }
            if (await db.Files.FindAsync([id], ct) is { } file)
                files[key] = file;
            else
                errors[key] = [$"No file has the id '{id}'. Upload it first."];
        }
        if (!TrainingMethods.IsKnown(request.Method))
            errors["method"] = [$"'{request.Method}' is not a training method here; use {TrainingMethods.Supervised} or {TrainingMethods.Dpo}."];
        foreach (var (key, file) in files)
        {
            var preference = file.Format == JsonlDataset.PreferenceFormat;
            if (request.Method == TrainingMethods.Dpo && !preference)
                errors[key] = [$"File {file.Id} holds {file.Format} examples; a dpo job needs preference pairs (input, preferred_output, non_preferred_output) on every line."];
            else if (request.Method == TrainingMethods.Supervised && preference)
                errors[key] = [$"File {file.Id} holds preference pairs; they train a dpo job (method.type \"dpo\"), a supervised job needs chat or prompt/completion examples."];
        }
        if (request.Suffix is { } suffix && !SuffixPattern().IsMatch(suffix))
            errors["suffix"] = [$"'{suffix}' is not a valid suffix: use 1 to 40 lower-case letters, digits and '-'."];
        if (request.Metadata is { Count: > 16 })
            errors["metadata"] = ["metadata holds at most 16 pairs."];
        else if (request.Metadata?.FirstOrDefault(p => p.Key.Length > 64 || p.Value.Length > 512) is { Key: not null } bad)
            errors["metadata"] = [$"metadata key '{bad.Key}': keys are at most 64 characters and values at most 512."];
        foreach (var (key, messages) in HyperparameterSpec.Validate(request.Hyperparameters, request.Method))
            errors[key] = messages;
        if (errors.Count > 0)
            return new SubmissionResult(null, errors);

        var training = files["training_file"];
        files.TryGetValue("validation_file", out var validation);
        files.TryGetValue("test_file", out var test);
        var job = new FineTuningJob
        {
            Id = Guid.NewGuid(),
            ExperimentId = request.ExperimentId,
            TraceParent = System.Diagnostics.Activity.Current?.Id,
            BaseModel = request.Model!,
            Status = JobStatus.ValidatingFiles,
            Method = request.Method,
            TrainingFileId = training.Id,
            TrainingArtifactId = training.ArtifactId,
            TrainingSha256 = training.Sha256,
            TrainingBytes = training.Bytes,
            ValidationFileId = validation?.Id,
            ValidationArtifactId = validation?.ArtifactId,
            ValidationSha256 = validation?.Sha256,
            ValidationBytes = validation?.Bytes ?? 0,
            TestFileId = test?.Id,
            TestArtifactId = test?.ArtifactId,
            TestSha256 = test?.Sha256,
            TestBytes = test?.Bytes ?? 0,
            Suffix = request.Suffix,
            RequestedHyperparameters = new(request.Hyperparameters),
            Metadata = request.Metadata is null ? null : new(request.Metadata),
        };
        db.Jobs.Add(job);
        JobEvents.Add(db, job.Id, "info", "created", $"Job created: {job.Method} training of base model {job.BaseModel}, training file {training.Id} ({training.Examples} examples).");
        // The job and its command commit together (outbox): the command leaves once, even if the broker is away now.
        db.SendOnCommit(StartFineTuningQueue, Apis.JobsApi.ToCommand(job));
        await db.SaveChangesAsync(ct);
        return new SubmissionResult(job, errors);
    }

    /// <summary>
    /// Cancels a job. Not yet training: cancelled at once (and <c>TrainingCancelled</c> published). Training: the
    /// worker stops at its next heartbeat and marks it cancelled. Finished: not cancellable. Returns the job as it is now.
    /// </summary>
    public static async Task<(FineTuningJob Job, bool Cancellable)> CancelAsync(FineTuningDbContext db, FineTuningJob job, CancellationToken ct)
    {
        var now = DateTimeOffset.UtcNow;
        var cancelledNow = await db.Jobs
            .Where(j => j.Id == job.Id && (j.Status == JobStatus.ValidatingFiles || j.Status == JobStatus.Queued || j.Status == JobStatus.Paused))
            .ExecuteUpdateAsync(s => s.SetProperty(j => j.Status, JobStatus.Cancelled).SetProperty(j => j.CancelRequested, true).SetProperty(j => j.FinishedAt, now), ct);
        var cancellable = true;
        if (cancelledNow == 1)
        {
            JobEvents.Add(db, job.Id, "info", "cancelled", "Job cancelled before training started.");
            db.PublishOnCommit(new TrainingCancelled { JobId = job.Id, ExperimentId = job.ExperimentId, Step = 0, CancelledAt = now });
            await db.SaveChangesAsync(ct);
        }
        else if (await db.Jobs.Where(j => j.Id == job.Id && j.Status == JobStatus.Running).ExecuteUpdateAsync(s => s.SetProperty(j => j.CancelRequested, true), ct) == 1)
        {
            JobEvents.Add(db, job.Id, "info", "cancel_requested", "Cancellation requested; the worker stops at its next heartbeat.");
            await db.SaveChangesAsync(ct);
        }
        else
            cancellable = false;
        return (await db.Jobs.AsNoTracking().FirstAsync(j => j.Id == job.Id, ct), cancellable);
    }

    /// <summary>
    /// Pauses a job that has not finished. In validating_files its files are still validated, and it is then kept
    /// paused instead of queued; queued: at once; running: its worker stops at its next heartbeat and keeps its
    /// checkpoints. <see cref="TrainingPaused"/> commits with the status. Other jobs are not pausable. Returns the job as it is now.
    /// </summary>
    public static async Task<(FineTuningJob Job, bool Pausable)> PauseAsync(FineTuningDbContext db, FineTuningJob job, string? requestedBy, CancellationToken ct)
    {
        var paused = await TransitionAsync(db, job.Id,
            current => current.Status is JobStatus.ValidatingFiles or JobStatus.Queued or JobStatus.Running ? JobStatus.Paused : null,
            async (current, _, now) =>
            {
                var checkpoint = await LastCheckpointAsync(db, job.Id, ct);
                JobEvents.Add(db, job.Id, "info", "paused", current.Status switch
                {
                    JobStatus.Running => "Job paused; the worker stops at its next heartbeat and keeps the last checkpoint.",
                    JobStatus.ValidatingFiles => "Job paused while its files are validated; once they pass it stays paused, not queued, until resumed.",
                    _ => "Job paused before training started.",
                });
                db.PublishOnCommit(new TrainingPaused
                {
                    JobId = job.Id,
                    ExperimentId = current.ExperimentId,
                    PausedFrom = current.Status,
                    Step = current.Step,
                    CheckpointId = checkpoint?.Id,
                    CheckpointStep = checkpoint?.Step,
                    RequestedBy = requestedBy,
                    PausedAt = now,
                });
            }, ct);
        return (await db.Jobs.AsNoTracking().FirstAsync(j => j.Id == job.Id, ct), paused);
    }

    /// <summary>
    /// Resumes a paused job: queued again, and a worker continues it from its last checkpoint; a job paused before its
    /// files were validated goes back to validating_files. <see cref="TrainingResumed"/> commits with the status.
    /// Returns the job as it is now.
    /// </summary>
    public static async Task<(FineTuningJob Job, bool Resumable)> ResumeAsync(FineTuningDbContext db, FineTuningJob job, string? requestedBy, CancellationToken ct)
    {
        // A worker that still holds the job has not stopped for the pause yet (it does at its next heartbeat): it goes on,
        // and the job is running again, rather than queued while it trains and then retrained from its last checkpoint.
        var resumed = await TransitionAsync(db, job.Id,
            current => current.Status != JobStatus.Paused ? null
                : current.CuratedArtifactId is null ? JobStatus.ValidatingFiles
                : current.LeaseOwner is not null && current.LeaseExpiresAt > DateTimeOffset.UtcNow ? JobStatus.Running
                : JobStatus.Queued,
            async (current, status, now) =>
            {
                var checkpoint = await LastCheckpointAsync(db, job.Id, ct);
                JobEvents.Add(db, job.Id, "info", "resumed", status == JobStatus.ValidatingFiles
                    ? "Job resumed: its files' validation continues, then it is queued."
                    : status == JobStatus.Running
                        ? $"Job resumed before its worker stopped: training goes on from step {current.Step}."
                    : checkpoint is null
                        ? "Job resumed: queued to train from the base model."
                        : $"Job resumed: queued to continue from its last checkpoint (step {checkpoint.Step}).");
                db.PublishOnCommit(new TrainingResumed
                {
                    JobId = job.Id,
                    ExperimentId = current.ExperimentId,
                    Status = status,
                    Step = current.Step,
                    CheckpointId = checkpoint?.Id,
                    CheckpointStep = checkpoint?.Step,
                    RequestedBy = requestedBy,
                    ResumedAt = now,
                });
            }, ct);
        return (await db.Jobs.AsNoTracking().FirstAsync(j => j.Id == job.Id, ct), resumed);
    }

    private static Task<JobCheckpoint?> LastCheckpointAsync(FineTuningDbContext db, Guid jobId, CancellationToken ct) =>
        db.Checkpoints.AsNoTracking().Where(c => c.JobId == jobId).OrderByDescending(c => c.Step).FirstOrDefaultAsync(ct);

    /// <summary>
    /// Moves a job from its status to the one <paramref name="next"/> gives for it (null: not allowed), in one transaction
    /// with what <paramref name="record"/> adds (its log entry and its event, through the outbox), so the event goes out
    /// exactly when the change commits. The update is conditional on what was read (status, and whether validation
    /// stored its curated set), so a concurrent change (validated, claimed, cancelled) makes it decide again.
    /// </summary>
    private static async Task<bool> TransitionAsync(FineTuningDbContext db, Guid id, Func<FineTuningJob, string?> next,
        Func<FineTuningJob, string, DateTimeOffset, Task> record, CancellationToken ct) =>
        await db.Database.CreateExecutionStrategy().ExecuteAsync(async () =>
        {
            while (true)
            {
                db.ChangeTracker.Clear(); // a retried attempt starts again from nothing added
                await using var transaction = await db.Database.BeginTransactionAsync(ct);
                var current = await db.Jobs.AsNoTracking().FirstAsync(j => j.Id == id, ct);
                if (current.CancelRequested || next(current) is not { } status)
                    return false;
                var (from, curated) = (current.Status, current.CuratedArtifactId);
                var changed = await db.Jobs.Where(j => j.Id == id && j.Status == from && j.CuratedArtifactId == curated && !j.CancelRequested)
                    .ExecuteUpdateAsync(s => s.SetProperty(j => j.Status, status), ct);
                if (changed == 0)
                    continue;
                await record(current, status, DateTimeOffset.UtcNow);
                await db.SaveChangesAsync(ct);
                await transaction.CommitAsync(ct);
                return true;
            }
        });
}

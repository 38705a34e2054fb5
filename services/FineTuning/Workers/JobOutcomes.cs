using System.Text.Json;
using AspireTune.Contracts.FineTuning;
using AspireTune.FineTuning.Data;
using AspireTune.FineTuning.Jobs;
using AspireTune.FineTuning.Registry;
using AspireTune.FineTuning.Serving;
using AspireTune.ServiceDefaults;
using AspireTune.ServiceDefaults.Work;
using AspireTune.ServiceDefaults.Messaging;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.FineTuning.Workers;

/// <summary>
/// The writes that end a job (succeeded with its registered model, cancelled, failed) and their events. Each is
/// conditional on this worker still holding the job's lease, so a job never ends twice.
/// </summary>
public sealed class JobOutcomes(IServiceScopeFactory scopes, ModelRegistry registry, WorkQueue<FineTuningDbContext, FineTuningJob> queue, ILogger<JobOutcomes> logger)
{
    private string Owner => queue.Owner;

    /// <summary>The model id a job registers: <c>ft:&lt;base&gt;:&lt;suffix&gt;:&lt;job id&gt;</c>, as hosted APIs name them; the whole
    /// job id (compact), never a prefix of it, which sequential ids share.</summary>
    public static string FineTunedModelId(FineTuningJob job) => $"ft:{job.BaseModel}:{job.Suffix ?? "job"}:{CompactId.Encode(job.Id)}";

    public async Task CompleteAsync(FineTuningJob job, TrainingRun run, TrainingOutcome outcome, TimeSpan elapsed)
    {
        var modelId = FineTunedModelId(job);
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
        var tracked = await db.Jobs.FirstAsync(j => j.Id == job.Id);
        if (tracked.LeaseOwner != Owner || tracked.Status != JobStatus.Running)
        {
            logger.LogWarning("Job {JobId} finished training on {Worker} but the lease moved on; its result is discarded", job.Id, Owner);
            return;
        }
        var description = scope.ServiceProvider.GetRequiredService<IModelRuntime>().Describe(run.OutputDirectory);
        var metrics = outcome.BestMetrics.ToList();
        if (!await db.Models.AnyAsync(m => m.Id == modelId))
            db.Models.Add(new RegisteredModel
            {
                Id = modelId,
                Source = ModelSource.FineTuned,
                Path = registry.Relative(run.OutputDirectory),
                Architecture = description.Architecture,
                Parameters = description.Parameters,
                HasTokenizer = description.HasTokenizer,
                BaseModel = job.BaseModel,
                JobId = job.Id,
                DatasetSha256 = job.TrainingSha256,
                Hyperparameters = job.ResolvedHyperparameters,
                BestMetrics = metrics,
            });
        var now = DateTimeOffset.UtcNow;
        tracked.Status = JobStatus.Succeeded;
        tracked.FineTunedModel = modelId;
        tracked.FinishedAt = now;
        tracked.LeaseOwner = null;
        tracked.LeaseExpiresAt = null;
        tracked.Step = outcome.Steps;
        tracked.TrainedTokens = outcome.TrainedTokens;
        tracked.BestMetrics = metrics;
        tracked.FitVerdict = outcome.FitVerdict;
        tracked.FitAdvice = outcome.FitAdvice;
        tracked.TrainingSeconds += elapsed.TotalSeconds;
        JobEvents.Add(db, job.Id, "info", "succeeded",
            $"Training finished: best step {outcome.BestStep} of {outcome.Steps}{(outcome.StoppedEarly ? " (stopped early)" : "")}, fit {outcome.FitVerdict}. Model '{modelId}' registered and served.");
        db.PublishOnCommit(new TrainingCompleted
        {
            JobId = job.Id,
            ExperimentId = job.ExperimentId,
            ModelId = modelId,
            BaseModel = job.BaseModel,
            DatasetSha256 = job.TrainingSha256,
            BestMetrics = outcome.BestMetrics,
            BestStep = outcome.BestStep,
            ServedEndpoint = scope.ServiceProvider.GetRequiredService<ServedEndpoint>().BaseUrl,
            FitVerdict = outcome.FitVerdict,
            FitAdvice = outcome.FitAdvice,
            Curve = await CurveAsync(db, job.Id),
            Duration = TimeSpan.FromSeconds(tracked.TrainingSeconds),
            CompletedAt = now,
        });
        await db.SaveChangesAsync();
        FineTuningTelemetry.JobsFinished.Add(1, new KeyValuePair<string, object?>("status", JobStatus.Succeeded));
    }

    /// <summary>The job's loss curves for <c>TrainingCompleted</c>: every validation point, training-only points thinned evenly to fit.</summary>
    private static async Task<List<TrainingCurvePoint>> CurveAsync(FineTuningDbContext db, Guid jobId)
    {
        // One point a step: a step's validation row and its progress row (or a row written again after a resume) merge,
        // keeping the last training loss and any validation loss of the step.
        var points = (await db.Metrics.AsNoTracking().Where(m => m.JobId == jobId).OrderBy(m => m.Id).ToListAsync())
            .GroupBy(m => m.Step).OrderBy(g => g.Key)
            .Select(g => new TrainingCurvePoint { Step = g.Key, Epoch = g.Last().Epoch, TrainLoss = g.Last().TrainLoss, ValidLoss = g.LastOrDefault(m => m.ValidLoss is not null)?.ValidLoss })
            .ToList();
        var validations = points.Count(p => p.ValidLoss is not null);
        var room = Math.Max(1, TrainingCurvePoint.MaxPoints - validations);
        var every = (int)Math.Ceiling((points.Count - validations) / (double)room);
        var seen = 0;
        return every <= 1 ? points : points.Where(p => p.ValidLoss is not null || seen++ % every == 0).ToList();
    }

    public async Task FinishCancelledAsync(FineTuningJob job, int step, TimeSpan elapsed) =>
        await EndAsync(job.Id, JobStatus.Cancelled, elapsed, (db, tracked, now) =>
        {
            JobEvents.Add(db, job.Id, "info", "cancelled", $"Job cancelled at step {step}.");
            db.PublishOnCommit(new TrainingCancelled { JobId = job.Id, ExperimentId = job.ExperimentId, Step = step, CancelledAt = now });
        });

    public async Task FailAsync(FineTuningJob job, string code, string reason, TimeSpan elapsed) =>
        await EndAsync(job.Id, JobStatus.Failed, elapsed, (db, tracked, now) =>
        {
            tracked.ErrorCode = code;
            tracked.ErrorMessage = reason;
            JobEvents.Add(db, job.Id, "error", "failed", $"Training failed: {reason}");
            db.PublishOnCommit(new TrainingFailed { JobId = job.Id, ExperimentId = job.ExperimentId, Code = code, Reason = reason, FailedAt = now });
        });

    /// <summary>Ends a job this worker holds: status, lease given up, the event (outbox) and the log entry in one save.</summary>
    private async Task EndAsync(Guid jobId, string status, TimeSpan elapsed, Action<FineTuningDbContext, FineTuningJob, DateTimeOffset> record)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
        var tracked = await db.Jobs.FirstOrDefaultAsync(j => j.Id == jobId && j.LeaseOwner == Owner && j.Status == JobStatus.Running);
        if (tracked is null)
            return;
        var now = DateTimeOffset.UtcNow;
        tracked.Status = status;
        tracked.FinishedAt = now;
        tracked.LeaseOwner = null;
        tracked.LeaseExpiresAt = null;
        tracked.TrainingSeconds += elapsed.TotalSeconds;
        record(db, tracked, now);
        await db.SaveChangesAsync();
        FineTuningTelemetry.JobsFinished.Add(1, new KeyValuePair<string, object?>("status", status));
    }

    /// <summary>Counts an interrupted attempt's time (the job goes back to the queue and resumes elsewhere).</summary>
    /// <summary>A run stopped because its job was paused: the time it trained counts, the checkpoints stay for the resume.</summary>
    public async Task RecordPausedAsync(Guid jobId, int step, TimeSpan elapsed)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
        await db.Jobs.Where(j => j.Id == jobId && j.Status == JobStatus.Paused)
            .ExecuteUpdateAsync(s => s.SetProperty(j => j.TrainingSeconds, j => j.TrainingSeconds + elapsed.TotalSeconds));
        var checkpoint = await db.Checkpoints.Where(c => c.JobId == jobId).OrderByDescending(c => c.Step).Select(c => (int?)c.Step).FirstOrDefaultAsync();
        JobEvents.Add(db, jobId, "info", "paused_training", $"Training paused at step {step}; resuming continues from step {checkpoint ?? 0} (the last checkpoint).");
        await db.SaveChangesAsync();
    }

    /// <summary>A run that stopped for a pause its job no longer has (resumed meanwhile): queued again, its time counted.</summary>
    public async Task RequeueAsync(Guid jobId, int step, TimeSpan elapsed)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
        var requeued = await db.Jobs.Where(j => j.Id == jobId && j.LeaseOwner == Owner && j.Status == JobStatus.Running && !j.CancelRequested)
            .ExecuteUpdateAsync(s => s.SetProperty(j => j.Status, JobStatus.Queued).SetProperty(j => j.TrainingSeconds, j => j.TrainingSeconds + elapsed.TotalSeconds));
        if (requeued == 0)
            return;
        JobEvents.Add(db, jobId, "info", "requeued", $"Training stopped at step {step} for a pause that was then resumed; it continues from its last checkpoint.");
        await db.SaveChangesAsync();
    }

    public async Task AddTrainingTimeAsync(Guid jobId, TimeSpan elapsed)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
        await db.Jobs.Where(j => j.Id == jobId && j.LeaseOwner == Owner && j.Status == JobStatus.Running)
            .ExecuteUpdateAsync(s => s.SetProperty(j => j.TrainingSeconds, j => j.TrainingSeconds + elapsed.TotalSeconds));
    }
}

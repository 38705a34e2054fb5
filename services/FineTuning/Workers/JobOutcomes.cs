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
        var metrics = JsonSerializer.Serialize(outcome.BestMetrics);
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
                HyperparametersJson = job.ResolvedHyperparametersJson,
                BestMetricsJson = metrics,
            });
        var now = DateTimeOffset.UtcNow;
        tracked.Status = JobStatus.Succeeded;
        tracked.FineTunedModel = modelId;
        tracked.FinishedAt = now;
        tracked.LeaseOwner = null;
        tracked.LeaseExpiresAt = null;
        tracked.Step = outcome.Steps;
        tracked.TrainedTokens = outcome.TrainedTokens;
        tracked.BestMetricsJson = metrics;
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
            Duration = TimeSpan.FromSeconds(tracked.TrainingSeconds),
            CompletedAt = now,
        });
        await db.SaveChangesAsync();
        FineTuningTelemetry.JobsFinished.Add(1, new KeyValuePair<string, object?>("status", JobStatus.Succeeded));
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
    public async Task AddTrainingTimeAsync(Guid jobId, TimeSpan elapsed)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
        await db.Jobs.Where(j => j.Id == jobId && j.LeaseOwner == Owner && j.Status == JobStatus.Running)
            .ExecuteUpdateAsync(s => s.SetProperty(j => j.TrainingSeconds, j => j.TrainingSeconds + elapsed.TotalSeconds));
    }
}

using System.Text.Json;
using AspireTune.Contracts.FineTuning;
using AspireTune.FineTuning.Data;
using AspireTune.FineTuning.Jobs;
using AspireTune.FineTuning.Registry;
using AspireTune.FineTuning.Serving;
using AspireTune.ServiceDefaults;
using AspireTune.ServiceDefaults.Work;
using MassTransit;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.FineTuning.Workers;

/// <summary>
/// The writes that end a job (succeeded with its registered model, cancelled, failed) and their events. Each is
/// conditional on this worker still holding the job's lease, so a job never ends twice.
/// </summary>
public sealed class JobOutcomes(IServiceScopeFactory scopes, IBus bus, ModelRegistry registry, WorkQueue<FineTuningDbContext, FineTuningJob> queue, ILogger<JobOutcomes> logger)
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
        await db.SaveChangesAsync();
        FineTuningTelemetry.JobsFinished.Add(1, new KeyValuePair<string, object?>("status", JobStatus.Succeeded));

        await bus.Publish(new TrainingCompleted
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
    }

    public async Task FinishCancelledAsync(FineTuningJob job, int step, TimeSpan elapsed)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
        var now = DateTimeOffset.UtcNow;
        var done = await db.Jobs.Where(j => j.Id == job.Id && j.LeaseOwner == Owner && j.Status == JobStatus.Running)
            .ExecuteUpdateAsync(s => s.SetProperty(j => j.Status, JobStatus.Cancelled).SetProperty(j => j.FinishedAt, now)
                .SetProperty(j => j.LeaseOwner, (string?)null).SetProperty(j => j.LeaseExpiresAt, (DateTimeOffset?)null)
                .SetProperty(j => j.TrainingSeconds, j => j.TrainingSeconds + elapsed.TotalSeconds));
        if (done == 0)
            return;
        JobEvents.Add(db, job.Id, "info", "cancelled", $"Job cancelled at step {step}.");
        await db.SaveChangesAsync();
        FineTuningTelemetry.JobsFinished.Add(1, new KeyValuePair<string, object?>("status", JobStatus.Cancelled));
        await bus.Publish(new TrainingCancelled { JobId = job.Id, ExperimentId = job.ExperimentId, Step = step, CancelledAt = now });
    }

    public async Task FailAsync(FineTuningJob job, string code, string reason, TimeSpan elapsed)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
        var now = DateTimeOffset.UtcNow;
        var done = await db.Jobs.Where(j => j.Id == job.Id && j.LeaseOwner == Owner && j.Status == JobStatus.Running)
            .ExecuteUpdateAsync(s => s.SetProperty(j => j.Status, JobStatus.Failed).SetProperty(j => j.FinishedAt, now)
                .SetProperty(j => j.ErrorCode, code).SetProperty(j => j.ErrorMessage, reason)
                .SetProperty(j => j.LeaseOwner, (string?)null).SetProperty(j => j.LeaseExpiresAt, (DateTimeOffset?)null)
                .SetProperty(j => j.TrainingSeconds, j => j.TrainingSeconds + elapsed.TotalSeconds));
        if (done == 0)
            return;
        JobEvents.Add(db, job.Id, "error", "failed", $"Training failed: {reason}");
        await db.SaveChangesAsync();
        FineTuningTelemetry.JobsFinished.Add(1, new KeyValuePair<string, object?>("status", JobStatus.Failed));
        await bus.Publish(new TrainingFailed { JobId = job.Id, ExperimentId = job.ExperimentId, Code = code, Reason = reason, FailedAt = now });
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

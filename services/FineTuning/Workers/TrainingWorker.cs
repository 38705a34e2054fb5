using System.Diagnostics;
using AspireTune.FineTuning.Data;
using AspireTune.FineTuning.Jobs;
using AspireTune.FineTuning.Registry;
using AspireTune.ServiceDefaults.Work;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace AspireTune.FineTuning.Workers;

/// <summary>
/// The training loop of a worker process. The <c>StartFineTuning</c> command only validates and queues a job
/// (seconds), so no broker message is held for the hours training takes; this worker then claims queued jobs,
/// and jobs whose worker stopped renewing its lease, from the durable job queue
/// (<see cref="WorkQueue{TContext, T}"/> on the <c>jobs</c> table), one at a time. A worker killed mid-job stops
/// renewing; the next worker (or the same one restarted, at once) resumes from the job's last checkpoint.
/// </summary>
public sealed class TrainingWorker(
    WorkQueue<FineTuningDbContext, FineTuningJob> queue,
    IServiceScopeFactory scopes,
    IHostApplicationLifetime lifetime,
    ITrainingBackend backend,
    TrainingInputs inputs,
    JobOutcomes outcomes,
    ModelRegistry registry,
    IOptions<FineTuningOptions> options,
    ILogger<TrainingWorker> logger) : WorkQueueWorker<FineTuningDbContext, FineTuningJob>(queue, scopes, lifetime, logger)
{
    public static readonly WorkQueueDefinition<FineTuningJob> Definition = new()
    {
        Pending = j => j.Status == JobStatus.Queued || j.Status == JobStatus.Running,
        // A pause stops the worker as a cancel does; the job then keeps its checkpoints and waits for its resume.
        CancelRequested = j => j.CancelRequested || j.Status == JobStatus.Paused,
        OnClaim = s => s.SetProperty(j => j.Status, JobStatus.Running).SetProperty(j => j.Attempts, j => j.Attempts + 1),
    };

    protected override async Task ProcessAsync(WorkLease lease, CancellationToken stoppingToken)
    {
        FineTuningJob job;
        RegisteredModel baseModel;
        await using (var scope = Scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
            job = await db.Jobs.AsNoTracking().FirstAsync(j => j.Id == lease.Id, stoppingToken);
            baseModel = await db.Models.AsNoTracking().FirstAsync(m => m.Id == job.BaseModel, stoppingToken);
        }
        // Part of the trace that created the job (an experiment's, under Aspire), though the work queue picked it up.
        using var activity = FineTuningTelemetry.ActivitySource.StartActivity("fine-tuning train", ActivityKind.Internal, job.TraceParent);
        activity?.SetTag("aspiretune.job_id", lease.Id);
        activity?.SetTag("aspiretune.experiment_id", job.ExperimentId);
        using var logScope = logger.BeginScope(new Dictionary<string, object?> { ["JobId"] = job.Id, ["ExperimentId"] = job.ExperimentId });
        if (job.CancelRequested)
        {
            // Cancelled while its previous worker was lost: nothing to train.
            await outcomes.FinishCancelledAsync(job, job.Step, TimeSpan.Zero);
            return;
        }

        var sink = new TrainingEventSink(Scopes, registry, options.Value, Queue.Owner, job);
        var pump = sink.PumpAsync();
        var clock = Stopwatch.StartNew();
        try
        {
            var run = await inputs.PrepareAsync(job, baseModel, stoppingToken);
            logger.LogInformation("Worker {Worker} runs job {JobId} (attempt {Attempt}, resume from {Resume})", Queue.Owner, job.Id, job.Attempts, run.ResumeFrom ?? "base model");
            var outcome = await backend.TrainAsync(run, sink, lease.Token);
            sink.Complete();
            await pump;
            await outcomes.CompleteAsync(job, run, outcome, clock.Elapsed);
        }
        catch (OperationCanceledException) when (lease.Token.IsCancellationRequested)
        {
            await DrainAsync(sink, pump, job.Id);
            switch (lease.Reason)
            {
                case WorkStop.CancelRequested when await IsPausedAsync(job.Id):
                    await outcomes.RecordPausedAsync(job.Id, sink.LastStep, clock.Elapsed);
                    logger.LogInformation("Worker {Worker} paused job {JobId} at step {Step}", Queue.Owner, job.Id, sink.LastStep);
                    break;
                case WorkStop.CancelRequested when await IsCancelRequestedAsync(job.Id):
                    await outcomes.FinishCancelledAsync(job, sink.LastStep, clock.Elapsed);
                    break;
                case WorkStop.CancelRequested:
                    // Paused, and resumed between this worker seeing the pause and stopping: handed back, it continues
                    // from its last checkpoint on the next claim.
                    await outcomes.RequeueAsync(job.Id, sink.LastStep, clock.Elapsed);
                    logger.LogInformation("Worker {Worker}: job {JobId} was resumed while it stopped for a pause; handed back at step {Step}", Queue.Owner, job.Id, sink.LastStep);
                    break;
                case WorkStop.LeaseLost:
                    logger.LogWarning("Worker {Worker} lost the lease of job {JobId}; another worker has it now", Queue.Owner, job.Id);
                    break;
                default:
                    // Shutting down: the queue hands the job back at once for the next worker (or this one, restarted).
                    await outcomes.AddTrainingTimeAsync(job.Id, clock.Elapsed);
                    logger.LogInformation("Worker {Worker} stopping: job {JobId} handed back to be resumed", Queue.Owner, job.Id);
                    break;
            }
        }
        catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
        {
            await DrainAsync(sink, pump, job.Id);
            logger.LogError(ex, "Job {JobId} failed in training", job.Id);
            await outcomes.FailAsync(job, "training_error", ex.Message, clock.Elapsed);
        }
    }

    private async Task<bool> IsCancelRequestedAsync(Guid id)
    {
        await using var scope = Scopes.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<FineTuningDbContext>().Jobs.AnyAsync(j => j.Id == id && j.CancelRequested);
    }

    private async Task<bool> IsPausedAsync(Guid id)
    {
        await using var scope = Scopes.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<FineTuningDbContext>().Jobs.AnyAsync(j => j.Id == id && j.Status == JobStatus.Paused && !j.CancelRequested);
    }

    protected override async Task OnUnexpectedAsync(Guid id, Exception error)
    {
        await using var scope = Scopes.CreateAsyncScope();
        if (await scope.ServiceProvider.GetRequiredService<FineTuningDbContext>().Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == id) is { } job)
            await outcomes.FailAsync(job, "worker_error", error.Message, TimeSpan.Zero);
    }

    /// <summary>
    /// Flushes the progress rows and events of a run that ended early. A failure of the pump itself is logged
    /// here because the job's own outcome (failed, cancelled, handed back) is what gets recorded next.
    /// </summary>
    private async Task DrainAsync(TrainingEventSink sink, Task pump, Guid jobId)
    {
        sink.Complete();
        await pump.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        if (pump.Exception is { } error)
            logger.LogError(error, "Recording progress of job {JobId} failed", jobId);
    }
}

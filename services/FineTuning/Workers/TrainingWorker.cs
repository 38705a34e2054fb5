using System.Diagnostics;
using System.Text.Json;
using System.Threading.Channels;
using AspireTune.Contracts.Common;
using AspireTune.Contracts.FineTuning;
using AspireTune.FineTuning.Curation;
using AspireTune.FineTuning.Data;
using AspireTune.FineTuning.Jobs;
using AspireTune.FineTuning.Registry;
using AspireTune.FineTuning.Serving;
using AspireTune.ServiceDefaults;
using AspireTune.ServiceDefaults.Artifacts;
using AspireTune.ServiceDefaults.Data;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace AspireTune.FineTuning.Workers;

/// <summary>
/// The training loop of a worker process. The <c>StartFineTuning</c> command only validates and queues a
/// job (seconds), so no broker message is held for the hours training takes; this loop then claims queued
/// jobs, and jobs whose worker stopped renewing its lease, with one conditional UPDATE, so exactly one
/// worker wins each job. While training it renews the lease every heartbeat; a worker killed mid-job stops
/// renewing, the lease runs out and the next worker resumes from the job's last checkpoint. Every write that
/// ends a job is conditional on still holding the lease, so a job never completes twice.
/// </summary>
public sealed class TrainingWorker(
    IServiceScopeFactory scopes,
    ITrainingBackend backend,
    IBus bus,
    IArtifactStore artifacts,
    DataRoot dataRoot,
    ModelRegistry registry,
    IOptions<FineTuningOptions> options,
    ILogger<TrainingWorker> logger) : BackgroundService
{
    /// <summary>This worker's identity in leases and events: host, process id and a per-start nonce.</summary>
    public string WorkerId { get; } = $"{Environment.MachineName}/{Environment.ProcessId}/{Guid.NewGuid().ToString("N")[..6]}";

    private IServiceScopeFactory Scopes => scopes;
    private IBus Bus => bus;
    private IOptions<FineTuningOptions> Options => options;
    private ModelRegistry Registry => registry;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var poll = TimeSpan.FromMilliseconds(options.Value.PollIntervalMs);
        while (!stoppingToken.IsCancellationRequested)
        {
            var claimed = await TryClaimAsync(stoppingToken);
            if (claimed is null)
            {
                await ResendStaleValidationsAsync(stoppingToken);
                await Task.Delay(poll, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
                continue;
            }
            await RunAsync(claimed.Value, stoppingToken);
        }
    }

    /// <summary>
    /// Jobs whose StartFineTuning never arrived (the API process died between writing the job and sending the
    /// command) would wait in validating_files forever; their command is sent again. A command that did arrive
    /// and is merely slow is harmless to repeat: the consumer acts only on jobs still in validating_files, and the
    /// job's status is a concurrency token.
    /// </summary>
    private async Task ResendStaleValidationsAsync(CancellationToken ct)
    {
        var now = DateTimeOffset.UtcNow;
        if (now < _nextResendCheck)
            return;
        var stale = now.AddSeconds(-options.Value.ResendValidationAfterSeconds);
        _nextResendCheck = now.AddSeconds(Math.Max(1, options.Value.ResendValidationAfterSeconds / 2.0));
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
        var jobs = await db.Jobs.Where(j => j.Status == JobStatus.ValidatingFiles && j.CreatedAt < stale).Take(20).ToListAsync(ct);
        if (jobs.Count == 0)
            return;
        var endpoint = await bus.GetSendEndpoint(new Uri($"queue:{Consumers.StartFineTuningConsumerDefinition.QueueName}"));
        foreach (var job in jobs)
        {
            logger.LogWarning("Job {JobId} has been validating since {CreatedAt}; sending its StartFineTuning again", job.Id, job.CreatedAt);
            JobEvents.Add(db, job.Id, "warn", "validation_resent", "Validation had not started; the StartFineTuning command was sent again.");
            await endpoint.Send(Apis.JobsApi.ToCommand(job), ct);
        }
        await db.SaveChangesAsync(ct);
    }

    private DateTimeOffset _nextResendCheck;

    private async Task<Guid?> TryClaimAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
        var now = DateTimeOffset.UtcNow;
        var candidates = await db.Jobs.AsNoTracking()
            .Where(j => j.Status == JobStatus.Queued || (j.Status == JobStatus.Running && j.LeaseExpiresAt < now))
            .OrderBy(j => j.CreatedAt).Select(j => j.Id).Take(5).ToListAsync(ct);
        var lease = now.AddSeconds(options.Value.LeaseSeconds);
        foreach (var id in candidates)
        {
            var won = await db.Jobs
                .Where(j => j.Id == id && !j.CancelRequested &&
                            (j.Status == JobStatus.Queued || (j.Status == JobStatus.Running && j.LeaseExpiresAt < now)))
                .ExecuteUpdateAsync(s => s
                    .SetProperty(j => j.Status, JobStatus.Running)
                    .SetProperty(j => j.LeaseOwner, WorkerId)
                    .SetProperty(j => j.LeaseExpiresAt, lease)
                    .SetProperty(j => j.Attempts, j => j.Attempts + 1), ct);
            if (won == 1)
                return id;
        }
        return null;
    }

    private async Task RunAsync(Guid jobId, CancellationToken stoppingToken)
    {
        FineTuningJob job;
        RegisteredModel baseModel;
        await using (var scope = scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
            job = await db.Jobs.AsNoTracking().FirstAsync(j => j.Id == jobId, stoppingToken);
            baseModel = await db.Models.AsNoTracking().FirstAsync(m => m.Id == job.BaseModel, stoppingToken);
        }
        // Part of the trace that created the job (an experiment's, under Aspire), though a poll loop picked it up.
        using var activity = FineTuningTelemetry.ActivitySource.StartActivity("fine-tuning train", ActivityKind.Internal, job.TraceParent);
        activity?.SetTag("aspiretune.job_id", jobId);
        activity?.SetTag("aspiretune.experiment_id", job.ExperimentId);
        using var logScope = logger.BeginScope(new Dictionary<string, object?> { ["JobId"] = jobId, ["ExperimentId"] = job.ExperimentId });

        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var stopReason = StopReason.None;
        var heartbeat = HeartbeatAsync(jobId, reason => { stopReason = reason; cancel.Cancel(); }, cancel.Token);
        var sink = new EventSink(this, job);
        var pump = sink.PumpAsync();
        var clock = Stopwatch.StartNew();
        try
        {
            var run = await PrepareAsync(job, baseModel, stoppingToken);
            logger.LogInformation("Worker {Worker} runs job {JobId} (attempt {Attempt}, resume from {Resume})", WorkerId, jobId, job.Attempts, run.ResumeFrom ?? "base model");
            var outcome = await backend.TrainAsync(run, sink, cancel.Token);
            sink.Complete();
            await pump;
            await CompleteAsync(job, baseModel, run, outcome, clock.Elapsed);
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            await DrainAsync(sink, pump, jobId);
            switch (stopReason)
            {
                case StopReason.CancelRequested:
                    await FinishCancelledAsync(job, sink.LastStep, clock.Elapsed);
                    break;
                case StopReason.LeaseLost:
                    logger.LogWarning("Worker {Worker} lost the lease of job {JobId}; another worker has it now", WorkerId, jobId);
                    break;
                default:
                    // Shutting down: hand the job back at once instead of making the next worker wait for the lease to lapse.
                    await ReleaseAsync(jobId, clock.Elapsed);
                    break;
            }
        }
        catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
        {
            await DrainAsync(sink, pump, jobId);
            logger.LogError(ex, "Job {JobId} failed in training", jobId);
            await FailAsync(job, "training_error", ex.Message, clock.Elapsed);
        }
        finally
        {
            await cancel.CancelAsync();
            await heartbeat;
        }
    }

    private enum StopReason { None, CancelRequested, LeaseLost }

    /// <summary>
    /// Flushes the progress rows and events of a run that ended early. A failure of the pump itself is logged
    /// here because the job's own outcome (failed, cancelled, handed back) is what gets recorded next.
    /// </summary>
    private async Task DrainAsync(EventSink sink, Task pump, Guid jobId)
    {
        sink.Complete();
        await pump.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        if (pump.Exception is { } error)
            logger.LogError(error, "Recording progress of job {JobId} failed", jobId);
    }

    private async Task HeartbeatAsync(Guid jobId, Action<StopReason> stop, CancellationToken ct)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(options.Value.HeartbeatSeconds));
        try
        {
            while (await timer.WaitForNextTickAsync(ct))
            {
                await using var scope = scopes.CreateAsyncScope();
                var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
                var renewed = await db.Jobs.Where(j => j.Id == jobId && j.LeaseOwner == WorkerId && j.Status == JobStatus.Running)
                    .ExecuteUpdateAsync(s => s.SetProperty(j => j.LeaseExpiresAt, DateTimeOffset.UtcNow.AddSeconds(options.Value.LeaseSeconds)), ct);
                if (renewed == 0)
                {
                    stop(StopReason.LeaseLost);
                    return;
                }
                if (await db.Jobs.AnyAsync(j => j.Id == jobId && j.CancelRequested, ct))
                {
                    stop(StopReason.CancelRequested);
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The run ended; the heartbeat ends with it.
        }
    }

    private async Task<TrainingRun> PrepareAsync(FineTuningJob job, RegisteredModel baseModel, CancellationToken ct)
    {
        var hyper = JsonSerializer.Deserialize<Hyperparameters>(job.ResolvedHyperparametersJson!)!;
        var curated = JsonlDataset.Parse(await artifacts.ReadVerifiedAsync(new ArtifactRef { Id = job.CuratedArtifactId!, Sha256 = job.CuratedSha256!, Length = job.CuratedBytes }, ct));
        var examples = curated.Examples.Select(ToPair).ToList();
        List<PromptCompletion> train, validation;
        if (job.ValidationArtifactId is not null)
        {
            var file = JsonlDataset.Parse(await artifacts.ReadVerifiedAsync(new ArtifactRef { Id = job.ValidationArtifactId, Sha256 = job.ValidationSha256!, Length = job.ValidationBytes }, ct));
            (train, validation) = (examples, file.Examples.Select(ToPair).ToList());
        }
        else
        {
            // Seeded shuffle: every attempt of the job (and every worker) holds out the same examples.
            var order = examples.ToArray();
            new Random(hyper.Seed).Shuffle(order);
            var holdout = JobValidator.HoldoutCount(order.Length, options.Value.ValidationHoldout);
            (validation, train) = (order[..holdout].ToList(), order[holdout..].ToList());
        }

        string? resume = null;
        await using (var scope = scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
            var checkpoints = await db.Checkpoints.AsNoTracking().Where(c => c.JobId == job.Id).OrderByDescending(c => c.Step).ToListAsync(ct);
            resume = checkpoints.Select(c => Path.Combine(dataRoot.Path, c.Path)).FirstOrDefault(Directory.Exists);
        }
        var jobFolder = Path.Combine(dataRoot.Folder("fine-tuning"), job.Id.ToString("N"));
        return new TrainingRun
        {
            JobId = job.Id,
            BaseModelDirectory = await registry.MaterializeAsync(baseModel, ct),
            OutputDirectory = Path.Combine(dataRoot.Folder("models"), "ft-" + job.Id.ToString("N")),
            CheckpointDirectory = Path.Combine(jobFolder, "checkpoints"),
            ResumeFrom = resume,
            Train = train,
            Validation = validation,
            Hyperparameters = hyper,
        };
    }

    private static PromptCompletion ToPair(TrainingExample example)
    {
        var (prompt, completion) = ChatTemplate.Render(example);
        return new PromptCompletion(prompt, completion);
    }

    /// <summary>The model id a job registers: <c>ft:&lt;base&gt;:&lt;suffix&gt;:&lt;job id&gt;</c>, as hosted APIs name them; the whole
    /// job id (compact), never a prefix of it, which sequential ids share.</summary>
    public static string FineTunedModelId(FineTuningJob job) => $"ft:{job.BaseModel}:{job.Suffix ?? "job"}:{CompactId.Encode(job.Id)}";

    private async Task CompleteAsync(FineTuningJob job, RegisteredModel baseModel, TrainingRun run, TrainingOutcome outcome, TimeSpan elapsed)
    {
        var modelId = FineTunedModelId(job);
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
        var tracked = await db.Jobs.FirstAsync(j => j.Id == job.Id);
        if (tracked.LeaseOwner != WorkerId || tracked.Status != JobStatus.Running)
        {
            logger.LogWarning("Job {JobId} finished training on {Worker} but the lease moved on; its result is discarded", job.Id, WorkerId);
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

    private async Task FinishCancelledAsync(FineTuningJob job, int step, TimeSpan elapsed)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
        var now = DateTimeOffset.UtcNow;
        var done = await db.Jobs.Where(j => j.Id == job.Id && j.LeaseOwner == WorkerId && j.Status == JobStatus.Running)
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

    private async Task FailAsync(FineTuningJob job, string code, string reason, TimeSpan elapsed)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
        var now = DateTimeOffset.UtcNow;
        var done = await db.Jobs.Where(j => j.Id == job.Id && j.LeaseOwner == WorkerId && j.Status == JobStatus.Running)
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

    private async Task ReleaseAsync(Guid jobId, TimeSpan elapsed)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
        var past = DateTimeOffset.UtcNow.AddSeconds(-1);
        await db.Jobs.Where(j => j.Id == jobId && j.LeaseOwner == WorkerId && j.Status == JobStatus.Running)
            .ExecuteUpdateAsync(s => s.SetProperty(j => j.LeaseExpiresAt, past)
                .SetProperty(j => j.TrainingSeconds, j => j.TrainingSeconds + elapsed.TotalSeconds));
        logger.LogInformation("Worker {Worker} stopping: job {JobId} handed back for another worker to resume", WorkerId, jobId);
    }

    /// <summary>
    /// Turns the trainer's callbacks (on the training thread) into database rows and bus events, in order,
    /// on one pump task, so training never waits on the database or the broker.
    /// </summary>
    private sealed class EventSink(TrainingWorker worker, FineTuningJob job) : ITrainingListener
    {
        private readonly Channel<Func<Task>> _work = Channel.CreateUnbounded<Func<Task>>(new UnboundedChannelOptions { SingleReader = true });
        private long _lastProgressTicks;
        private readonly List<double> _lossesSinceEvent = [];
        public int LastStep;

        public void Complete() => _work.Writer.TryComplete();

        public async Task PumpAsync()
        {
            await foreach (var item in _work.Reader.ReadAllAsync())
                await item();
        }

        private void Enqueue(Func<Task> item) => _work.Writer.TryWrite(item);

        public void OnStarted(int totalSteps, string device, int resumedFromStep) => Enqueue(async () =>
        {
            await using var scope = worker.Scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
            var now = DateTimeOffset.UtcNow;
            await db.Jobs.Where(j => j.Id == job.Id).ExecuteUpdateAsync(s => s.SetProperty(j => j.TotalSteps, totalSteps)
                .SetProperty(j => j.StartedAt, j => j.StartedAt ?? now).SetProperty(j => j.Step, resumedFromStep));
            JobEvents.Add(db, job.Id, "info", "started", resumedFromStep > 0
                ? $"Training resumed from step {resumedFromStep} of {totalSteps} on {device} by {worker.WorkerId}."
                : $"Training started: {totalSteps} steps on {device} by {worker.WorkerId}.");
            await db.SaveChangesAsync();
            await worker.Bus.Publish(new TrainingStarted
            {
                JobId = job.Id,
                ExperimentId = job.ExperimentId,
                BaseModel = job.BaseModel,
                Worker = worker.WorkerId,
                Device = device,
                TotalSteps = totalSteps,
                Resumed = resumedFromStep > 0 || job.Attempts > 1,
                StartedAt = now,
            });
        });

        public void OnStep(StepReport step)
        {
            LastStep = step.Step;
            var jobTag = new KeyValuePair<string, object?>("aspiretune.job_id", job.Id);
            FineTuningTelemetry.TrainingLoss.Record(step.TrainLoss, jobTag);
            FineTuningTelemetry.TokensPerSecond.Record(step.TokensPerSecond, jobTag);
            FineTuningTelemetry.TrainingStep.Record(step.Step, jobTag);
            lock (_lossesSinceEvent)
                _lossesSinceEvent.Add(step.TrainLoss);
            var now = Stopwatch.GetTimestamp();
            var due = Stopwatch.GetElapsedTime(Interlocked.Read(ref _lastProgressTicks), now).TotalMilliseconds >= worker.Options.Value.ProgressIntervalMs;
            if (!due && step.Step != step.TotalSteps)
                return;
            Interlocked.Exchange(ref _lastProgressTicks, now);
            Enqueue(() => ProgressAsync(step.Step, step.TotalSteps, step.Epoch, step.LearningRate, step.TokensPerSecond, null));
        }

        public void OnEvaluation(EvaluationReport evaluation) =>
            Enqueue(() => ProgressAsync(evaluation.Step, job.TotalSteps, evaluation.Epoch, null, null, evaluation));

        private double? _lastLr;
        private double _lastTokensPerSecond;

        private async Task ProgressAsync(int step, int total, double epoch, double? lr, double? tokensPerSecond, EvaluationReport? evaluation)
        {
            double loss;
            lock (_lossesSinceEvent)
            {
                loss = evaluation?.TrainLoss ?? (_lossesSinceEvent.Count == 0 ? double.NaN : _lossesSinceEvent.Average());
                _lossesSinceEvent.Clear();
            }
            _lastLr = lr ?? _lastLr;
            _lastTokensPerSecond = tokensPerSecond ?? _lastTokensPerSecond;
            if (double.IsNaN(loss))
                return;
            await using var scope = worker.Scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
            db.Metrics.Add(new JobMetric
            {
                JobId = job.Id,
                Step = step,
                Epoch = epoch,
                TrainLoss = loss,
                ValidLoss = evaluation?.ValidLoss,
                ValidMeanTokenAccuracy = evaluation?.ValidMeanTokenAccuracy,
                LearningRate = _lastLr ?? 0,
                TokensPerSecond = _lastTokensPerSecond,
            });
            if (evaluation is not null)
                JobEvents.Add(db, job.Id, "info", "metrics",
                    $"Step {step}/{total}: train loss {loss:0.0000}, valid loss {evaluation.ValidLoss:0.0000}, valid mean token accuracy {evaluation.ValidMeanTokenAccuracy:0.0000}",
                    new { step, train_loss = loss, valid_loss = evaluation.ValidLoss, valid_mean_token_accuracy = evaluation.ValidMeanTokenAccuracy });
            await db.SaveChangesAsync();
            await db.Jobs.Where(j => j.Id == job.Id && j.Step < step).ExecuteUpdateAsync(s => s.SetProperty(j => j.Step, step));
            await worker.Bus.Publish(new TrainingProgressed
            {
                JobId = job.Id,
                ExperimentId = job.ExperimentId,
                Step = step,
                TotalSteps = total,
                Epoch = epoch,
                TrainLoss = loss,
                ValidLoss = evaluation?.ValidLoss,
                ValidMeanTokenAccuracy = evaluation?.ValidMeanTokenAccuracy,
                ValidMetric = evaluation?.ValidExactMatch,
                LearningRate = _lastLr ?? 0,
                TokensPerSecond = _lastTokensPerSecond,
            });
        }

        public void OnCheckpoint(CheckpointReport checkpoint) => Enqueue(async () =>
        {
            await using var scope = worker.Scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
            var id = $"ftckpt-{CompactId.Encode(job.Id)}-{checkpoint.Step}";
            if (await db.Checkpoints.AnyAsync(c => c.Id == id))
                return; // re-saved after a resume: the row already describes it
            db.Checkpoints.Add(new JobCheckpoint
            {
                Id = id,
                JobId = job.Id,
                Step = checkpoint.Step,
                TrainLoss = checkpoint.TrainLoss,
                ValidLoss = checkpoint.ValidLoss,
                ValidMeanTokenAccuracy = checkpoint.ValidMeanTokenAccuracy,
                Path = worker.Registry.Relative(checkpoint.Directory),
            });
            JobEvents.Add(db, job.Id, "info", "checkpoint", $"Checkpoint {id} saved at step {checkpoint.Step}.");
            await db.SaveChangesAsync();
            await worker.Bus.Publish(new CheckpointSaved
            {
                JobId = job.Id,
                ExperimentId = job.ExperimentId,
                Step = checkpoint.Step,
                TrainLoss = checkpoint.TrainLoss,
                ValidLoss = checkpoint.ValidLoss,
                ValidMeanTokenAccuracy = checkpoint.ValidMeanTokenAccuracy,
                CheckpointId = id,
            });
        });
    }
}

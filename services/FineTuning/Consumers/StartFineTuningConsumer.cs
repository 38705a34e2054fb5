using AspireTune.ServiceDefaults.Work;
using AspireTune.ServiceDefaults.Messaging;
using System.Text.Json;
using AspireTune.Contracts.FineTuning;
using AspireTune.FineTuning.Data;
using AspireTune.FineTuning.Jobs;
using AspireTune.ServiceDefaults.Data;
using MassTransit;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.FineTuning.Consumers;

/// <summary>
/// Validates and queues a job: runs the quality gate, stores its report, and leaves the job queued for the
/// training workers (or failed, publishing <see cref="TrainingFailed"/>). The message is acknowledged once the
/// job is durably queued; training itself is claimed from the database by <c>TrainingWorker</c>. A job the
/// HTTP API created is picked up by id; a command from another service (the experiment workflow) creates it.
/// </summary>
public sealed class StartFineTuningConsumer(FineTuningDbContext db, JobValidator validator, WorkQueue<FineTuningDbContext, FineTuningJob> queue, ILogger<StartFineTuningConsumer> logger) : IConsumer<StartFineTuning>
{
    private const string Name = nameof(StartFineTuningConsumer);

    /// <summary>A job as a command from another service describes it, before validation.</summary>
    internal static FineTuningJob FromCommand(StartFineTuning message) => new()
    {
        Id = message.JobId,
        ExperimentId = message.ExperimentId,
        TraceParent = System.Diagnostics.Activity.Current?.Id,
        BaseModel = message.BaseModel,
        Status = JobStatus.ValidatingFiles,
        Method = message.Method,
        TrainingArtifactId = message.TrainingFile.Id,
        TrainingSha256 = message.TrainingFile.Sha256,
        TrainingBytes = message.TrainingFile.Length,
        ValidationArtifactId = message.ValidationFile?.Id,
        ValidationSha256 = message.ValidationFile?.Sha256,
        ValidationBytes = message.ValidationFile?.Length ?? 0,
        TestArtifactId = message.TestFile?.Id,
        TestSha256 = message.TestFile?.Sha256,
        TestBytes = message.TestFile?.Length ?? 0,
        Suffix = message.Suffix,
        RequestedHyperparameters = new(message.Hyperparameters),
    };

    public async Task Consume(ConsumeContext<StartFineTuning> context)
    {
        var ct = context.CancellationToken;
        var message = context.Message;
        if (await db.AlreadyProcessedAsync(context.MessageId, Name, ct))
            return;

        var job = await db.Jobs.FirstOrDefaultAsync(j => j.Id == message.JobId, ct);
        // A job the jobs API created had its hyperparameters checked there; only a command's own are checked here.
        Dictionary<string, string[]> errors = [];
        if (job is null)
        {
            job = FromCommand(message);
            db.Jobs.Add(job);
            JobEvents.Add(db, job.Id, "info", "created", "Job created from a StartFineTuning command.");
            errors = TrainingMethods.IsKnown(message.Method)
                ? HyperparameterSpec.Validate(message.Hyperparameters, message.Method)
                : new() { ["method"] = [$"'{message.Method}' is not a training method; use supervised or dpo."] };
        }

        JobValidator.Outcome? outcome = null;
        // A job paused before its files were validated is validated all the same (and stays paused).
        if (job.Status == JobStatus.ValidatingFiles || (job.Status == JobStatus.Paused && job.CuratedArtifactId is null))
            outcome = errors.Count > 0
                ? validator.Reject(db, job, "invalid_hyperparameters", string.Join(" ", errors.Select(e => $"{e.Key}: {string.Join(" ", e.Value)}")))
                : await validator.ValidateAsync(db, job, ct);
        db.MarkProcessed(context.MessageId, Name);
        if (outcome is { Passed: false })
            db.PublishOnCommit(new TrainingFailed
            {
                JobId = job.Id,
                ExperimentId = job.ExperimentId,
                Code = outcome.Code!,
                Reason = outcome.Message!,
                FailedAt = job.FinishedAt ?? DateTimeOffset.UtcNow,
            });
        // Status is a concurrency token: if the job was cancelled while the gate ran, this throws and the retry sees the cancellation.
        await db.SaveChangesAsync(ct);

        if (outcome is { Passed: false })
        {
            logger.LogInformation("Job {JobId} failed validation: {Code}", job.Id, outcome.Code);
            FineTuningTelemetry.JobsFinished.Add(1, new KeyValuePair<string, object?>("status", JobStatus.Failed));
        }
        else if (job.Status == JobStatus.Queued)
            queue.Nudge();
    }
}

/// <summary>One job validated at a time per worker, one message prefetched: workers compete through the queue.</summary>
public sealed class StartFineTuningConsumerDefinition : ConsumerDefinition<StartFineTuningConsumer>
{
    public const string QueueName = "start-fine-tuning";

    public StartFineTuningConsumerDefinition()
    {
        EndpointName = QueueName;
        ConcurrentMessageLimit = 1;
    }

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpointConfigurator, IConsumerConfigurator<StartFineTuningConsumer> consumerConfigurator, IRegistrationContext context)
    {
        endpointConfigurator.PrefetchCount = 1;
        endpointConfigurator.ConcurrentMessageLimit = 1;
    }
}

using AspireTune.ServiceDefaults.Messaging;
using AspireTune.Contracts.FineTuning;
using AspireTune.FineTuning.Data;
using AspireTune.FineTuning.Jobs;
using AspireTune.ServiceDefaults.Data;
using MassTransit;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.FineTuning.Consumers;

/// <summary>
/// When validation itself failed after every retry (an artifact missing or not matching its SHA-256, the
/// database refusing), the job must not wait in validating_files forever: it fails with the reason, and the
/// sender hears <see cref="TrainingFailed"/>. The command still lands in the error queue for operators.
/// </summary>
public sealed class StartFineTuningFaultConsumer(FineTuningDbContext db) : IConsumer<Fault<StartFineTuning>>
{
    private const string Name = nameof(StartFineTuningFaultConsumer);

    public async Task Consume(ConsumeContext<Fault<StartFineTuning>> context)
    {
        var ct = context.CancellationToken;
        if (await db.AlreadyProcessedAsync(context.MessageId, Name, ct))
            return;
        var command = context.Message.Message;
        var reason = context.Message.Exceptions.FirstOrDefault()?.Message ?? "validation failed";
        var job = await db.Jobs.FirstOrDefaultAsync(j => j.Id == command.JobId, ct);
        if (job is null)
        {
            job = StartFineTuningConsumer.FromCommand(command);
            db.Jobs.Add(job);
        }
        var fail = job.Status == JobStatus.ValidatingFiles || (job.Status == JobStatus.Paused && job.CuratedArtifactId is null);
        if (fail)
        {
            job.Status = JobStatus.Failed;
            job.ErrorCode = "validation_error";
            job.ErrorMessage = $"The job's files could not be validated: {reason}";
            job.FinishedAt = DateTimeOffset.UtcNow;
            JobEvents.Add(db, job.Id, "error", "failed", job.ErrorMessage);
        }
        db.MarkProcessed(context.MessageId, Name);
        if (fail)
            db.PublishOnCommit(new TrainingFailed
            {
                JobId = job.Id,
                ExperimentId = job.ExperimentId,
                Code = job.ErrorCode!,
                Reason = job.ErrorMessage!,
                FailedAt = job.FinishedAt!.Value,
            });
        await db.SaveChangesAsync(ct);
    }
}

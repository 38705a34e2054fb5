using AspireTune.Contracts.Evaluation;
using AspireTune.Evaluation.Data;
using AspireTune.Evaluation.Runs;
using AspireTune.ServiceDefaults.Data;
using AspireTune.ServiceDefaults.Messaging;
using AspireTune.ServiceDefaults.Work;
using MassTransit;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.Evaluation.Consumers;

/// <summary>
/// Creates a run from the <c>RunEvaluation</c> command and hands it to the background worker. A redelivered
/// command (same message id or same run id) creates nothing twice; a command that cannot run (unknown prompt,
/// missing dataset) is answered with <c>EvaluationFailed</c> instead of being retried.
/// </summary>
public sealed class RunEvaluationConsumer(EvaluationDbContext db, RunFactory factory, WorkQueue<EvaluationDbContext, RunEntity> queue, ILogger<RunEvaluationConsumer> logger) : IConsumer<RunEvaluation>
{
    public async Task Consume(ConsumeContext<RunEvaluation> context)
    {
        var command = context.Message;
        var ct = context.CancellationToken;
        if (await db.AlreadyProcessedAsync(context.MessageId, nameof(RunEvaluationConsumer), ct) || await db.Runs.AnyAsync(r => r.Id == command.RunId, ct))
            return;

        var (run, errors) = await factory.CreateAsync(command, ct);

        if (run is null)
        {
            var reason = "The run cannot start: " + string.Join(" ", errors.SelectMany(e => e.Value));
            logger.LogWarning("RunEvaluation {RunId} rejected: {Reason}", command.RunId, reason);
            db.Runs.Add(new RunEntity
            {
                Id = command.RunId,
                ExperimentId = command.ExperimentId,
                Status = RunStatus.Failed,
                Spec = RunSpec.None,
                DatasetArtifactId = command.Dataset.Id,
                DatasetSha256 = command.Dataset.Sha256,
                DatasetLength = command.Dataset.Length,
                Error = reason,
                CreatedAt = DateTimeOffset.UtcNow,
                FinishedAt = DateTimeOffset.UtcNow,
            });
            db.MarkProcessed(context.MessageId, nameof(RunEvaluationConsumer));
            db.PublishOnCommit(new EvaluationFailed { RunId = command.RunId, ExperimentId = command.ExperimentId, Reason = reason, FailedAt = DateTimeOffset.UtcNow });
            await db.SaveChangesAsync(ct);
            return;
        }

        db.MarkProcessed(context.MessageId, nameof(RunEvaluationConsumer));
        await db.SaveChangesAsync(ct);
        queue.Nudge();
    }
}

using AspireTune.FineTuning.Data;
using AspireTune.FineTuning.Jobs;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace AspireTune.FineTuning.Workers;

/// <summary>
/// Jobs whose StartFineTuning never arrived (the API process died between writing the job and sending the
/// command) would wait in validating_files forever; their command is sent again. A command that did arrive
/// and is merely slow is harmless to repeat: the consumer acts only on jobs still in validating_files, and the
/// job's status is a concurrency token.
/// </summary>
public sealed class StaleValidationResender(IServiceScopeFactory scopes, IBus bus, IOptions<FineTuningOptions> options, ILogger<StaleValidationResender> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(Math.Max(1, options.Value.ResendValidationAfterSeconds / 2.0)));
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
                await ResendAsync(stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task ResendAsync(CancellationToken ct)
    {
        var stale = DateTimeOffset.UtcNow.AddSeconds(-options.Value.ResendValidationAfterSeconds);
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
}

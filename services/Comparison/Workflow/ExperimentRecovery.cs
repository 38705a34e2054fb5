using System.Text.Json;
using AspireTune.Comparison.Apis;
using AspireTune.Comparison.Data;
using AspireTune.Contracts.Comparison;
using MassTransit;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.Comparison.Workflow;

/// <summary>
/// Accepted work is never lost: once the host (and its bus) has started, experiments still queued get their
/// StartExperiment again, and running ones every command they still wait on (see
/// <see cref="ExperimentWorkflow.ResendOutstandingAsync"/>). All receivers are idempotent.
/// </summary>
public sealed class ExperimentRecovery(IServiceScopeFactory scopes, IHostApplicationLifetime lifetime, ILogger<ExperimentRecovery> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Sending before the bus has started would fail or wait: start-up ends only after MassTransit's own start.
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using (lifetime.ApplicationStarted.Register(() => started.TrySetResult()))
        await using (stoppingToken.Register(() => started.TrySetCanceled(stoppingToken)))
            await started.Task;

        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ComparisonDbContext>();
        var send = scope.ServiceProvider.GetRequiredService<ISendEndpointProvider>();
        var workflow = scope.ServiceProvider.GetRequiredService<ExperimentWorkflow>();
        var pending = await db.Experiments.AsNoTracking().Where(e => e.Status == ExperimentStatus.Queued || e.Status == ExperimentStatus.Running)
            .Select(e => new { e.Id, e.Status, e.RequestJson }).ToListAsync(stoppingToken);
        var commands = 0;
        foreach (var e in pending)
        {
            if (e.Status == ExperimentStatus.Queued)
            {
                await (await send.GetSendEndpoint(ExperimentsApi.StartQueue)).Send(JsonSerializer.Deserialize<StartExperiment>(e.RequestJson, JsonSerializerOptions.Web)!, stoppingToken);
                commands++;
            }
            else
                commands += await workflow.ResendOutstandingAsync(e.Id, send, stoppingToken);
        }
        if (commands > 0)
            logger.LogInformation("Recovery after start: {Commands} command(s) sent again for {Experiments} unfinished experiment(s)", commands, pending.Count);
    }
}

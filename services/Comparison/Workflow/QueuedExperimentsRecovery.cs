using System.Text.Json;
using AspireTune.Comparison.Apis;
using AspireTune.Comparison.Data;
using AspireTune.Contracts.Comparison;
using MassTransit;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.Comparison.Workflow;

/// <summary>
/// Accepted work is never lost: at start-up, experiments still queued (the process stopped before the command
/// was consumed, or the in-memory transport lost it) are sent again. The consumer ignores a second delivery.
/// </summary>
public sealed class QueuedExperimentsRecovery(IServiceScopeFactory scopes, ILogger<QueuedExperimentsRecovery> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ComparisonDbContext>();
        var send = scope.ServiceProvider.GetRequiredService<ISendEndpointProvider>();
        var queued = await db.Experiments.AsNoTracking().Where(e => e.Status == ExperimentStatus.Queued).Select(e => new { e.Id, e.RequestJson }).ToListAsync(stoppingToken);
        if (queued.Count == 0)
            return;
        var endpoint = await send.GetSendEndpoint(ExperimentsApi.StartQueue);
        foreach (var e in queued)
            await endpoint.Send(JsonSerializer.Deserialize<StartExperiment>(e.RequestJson, JsonSerializerOptions.Web)!, stoppingToken);
        logger.LogInformation("Re-sent {Count} queued experiment(s) after restart", queued.Count);
    }
}

using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AspireTune.ServiceDefaults.Work;

/// <summary>
/// The loop every durable queue runs: claim the oldest claimable item (queued, lapsed, or this worker's own
/// from before a restart), execute it with a heartbeat that renews the lease and turns a cancel written by any
/// replica into <see cref="WorkLease.Token"/>, release it at the end or at shutdown, and poll again (or wake
/// at once on <see cref="WorkQueue{TContext, T}.Nudge"/>). The poll is also the sweep of lapsed leases.
/// </summary>
public abstract class WorkQueueWorker<TContext, T>(WorkQueue<TContext, T> queue, IServiceScopeFactory scopes, IHostApplicationLifetime lifetime, ILogger logger)
    : BackgroundService
    where TContext : DbContext
    where T : class, ILeasedWork
{
    protected WorkQueue<TContext, T> Queue => queue;

    protected IServiceScopeFactory Scopes => scopes;

    /// <summary>Executes one claimed item. Stop when <paramref name="lease"/>'s token fires; write an outcome only while <see cref="WorkLease.Reason"/> is not <see cref="WorkStop.LeaseLost"/>.</summary>
    protected abstract Task ProcessAsync(WorkLease lease, CancellationToken stopping);

    /// <summary>An exception <see cref="ProcessAsync"/> did not handle (a bug, a lost database): record the failure where possible.</summary>
    protected abstract Task OnUnexpectedAsync(Guid id, Exception error);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!await HostStarted.WaitAsync(lifetime, stoppingToken))
            return;
        logger.LogInformation("Work queue {Queue} runs as {Owner}", typeof(T).Name, queue.Owner);

        using var slots = new SemaphoreSlim(queue.Timing.MaxConcurrency);
        var executing = new List<Task>();
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await slots.WaitAsync(stoppingToken);
                var id = await TryClaimAsync(stoppingToken);
                if (id is null)
                {
                    slots.Release();
                    await queue.WaitForWorkAsync(stoppingToken);
                    continue;
                }
                executing.RemoveAll(t => t.IsCompleted);
                var lease = new WorkLease(id.Value, stoppingToken);
                queue.TryBegin(lease);
                executing.Add(Task.Run(async () =>
                {
                    try
                    {
                        await RunAsync(lease, stoppingToken);
                    }
                    finally
                    {
                        queue.End(lease.Id);
                        lease.Dispose();
                        slots.Release();
                    }
                }, CancellationToken.None));
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // stopping: executing items see the same token and stop where they are
        }
        await Task.WhenAll(executing);
    }

    private async Task<Guid?> TryClaimAsync(CancellationToken ct)
    {
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            return await queue.ClaimNextAsync(scope.ServiceProvider.GetRequiredService<TContext>(), ct);
        }
        catch (Exception e) when (!ct.IsCancellationRequested && e is not OperationCanceledException)
        {
            // The database is away (restarting, failing over): try again at the next poll.
            logger.LogWarning(e, "Work queue {Queue}: claiming failed; retrying at the next poll", typeof(T).Name);
            return null;
        }
    }

    private async Task RunAsync(WorkLease lease, CancellationToken stoppingToken)
    {
        using var heartbeatStop = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var heartbeat = HeartbeatAsync(lease, heartbeatStop.Token);
        try
        {
            await ProcessAsync(lease, stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            logger.LogInformation("{Queue} {Id} interrupted by shutdown; released for the next worker", typeof(T).Name, lease.Id);
        }
        catch (Exception e) when (lease.Reason == WorkStop.LeaseLost)
        {
            logger.LogWarning(e, "{Queue} {Id} stopped after its lease moved to another worker", typeof(T).Name, lease.Id);
        }
        catch (Exception e)
        {
            logger.LogError(e, "{Queue} {Id} failed unexpectedly", typeof(T).Name, lease.Id);
            await OnUnexpectedAsync(lease.Id, e);
        }
        finally
        {
            await heartbeatStop.CancelAsync();
            await heartbeat;
            try
            {
                await using var scope = scopes.CreateAsyncScope();
                await queue.ReleaseAsync(scope.ServiceProvider.GetRequiredService<TContext>(), lease.Id, CancellationToken.None);
            }
            catch (Exception e) when (e is System.Data.Common.DbException or InvalidOperationException)
            {
                // Unreleased, the lease simply lapses (or this worker takes it back when it restarts).
                logger.LogWarning(e, "{Queue} {Id}: could not release its lease", typeof(T).Name, lease.Id);
            }
        }
    }

    private async Task HeartbeatAsync(WorkLease lease, CancellationToken stop)
    {
        using var timer = new PeriodicTimer(queue.Timing.Heartbeat);
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                try
                {
                    await using var scope = scopes.CreateAsyncScope();
                    var db = scope.ServiceProvider.GetRequiredService<TContext>();
                    if (!await queue.RenewAsync(db, lease.Id, stop))
                    {
                        logger.LogWarning("{Queue} {Id}: lease lost to another worker", typeof(T).Name, lease.Id);
                        lease.Stop(WorkStop.LeaseLost);
                        return;
                    }
                    if (await queue.IsCancelRequestedAsync(db, lease.Id, stop))
                        lease.Stop(WorkStop.CancelRequested);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // A missed renewal is survivable until the lease runs out; a lasting outage ends in LeaseLost.
                    logger.LogWarning(e, "{Queue} {Id}: heartbeat failed", typeof(T).Name, lease.Id);
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // The item ended; the heartbeat ends with it.
        }
    }
}

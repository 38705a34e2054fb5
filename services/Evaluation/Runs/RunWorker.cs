using System.Collections.Concurrent;
using System.Threading.Channels;
using AspireTune.Evaluation.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace AspireTune.Evaluation.Runs;

/// <summary>Runs waiting to execute, and the cancellation handle of each executing run.</summary>
public sealed class RunQueue
{
    private readonly Channel<Guid> _queue = Channel.CreateUnbounded<Guid>();
    private readonly ConcurrentDictionary<Guid, CancellationTokenSource> _executing = new();

    public void Enqueue(Guid runId) => _queue.Writer.TryWrite(runId);

    internal ChannelReader<Guid> Reader => _queue.Reader;

    internal bool TryBegin(Guid runId, CancellationTokenSource cancel) => _executing.TryAdd(runId, cancel);

    internal void End(Guid runId) => _executing.TryRemove(runId, out _);

    /// <summary>Cancels the run if it is executing in this process; false when it is not.</summary>
    public bool Cancel(Guid runId)
    {
        if (!_executing.TryGetValue(runId, out var cancel))
            return false;
        cancel.Cancel();
        return true;
    }
}

/// <summary>
/// Executes queued runs in the background, at most <see cref="EvaluationOptions.MaxConcurrentRuns"/> at once.
/// At start-up it re-queues every run left Queued or Running by a previous process: results already stored are
/// skipped, so a restart costs only the calls that were in flight.
/// </summary>
public sealed class RunWorker(RunQueue queue, IServiceScopeFactory scopes, IHostApplicationLifetime lifetime, IOptions<EvaluationOptions> options, ILogger<RunWorker> logger)
    : BackgroundService
{
    /// <summary>This worker's name in run leases: host, process and instance.</summary>
    private readonly string _owner = $"{Environment.MachineName}/{Environment.ProcessId}/{Guid.NewGuid().ToString("N")[..8]}";

    private TimeSpan Lease => TimeSpan.FromSeconds(options.Value.LeaseSeconds);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Events are published at the end of a run: wait until the bus (started after this service) is up.
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using (lifetime.ApplicationStarted.Register(() => started.TrySetResult()))
        await using (stoppingToken.Register(() => started.TrySetCanceled(stoppingToken)))
        {
            try
            {
                await started.Task;
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }

        await using (var scope = scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<EvaluationDbContext>();
            var unfinished = await db.Runs.Where(r => r.Status == RunStatus.Queued || r.Status == RunStatus.Running)
                .OrderBy(r => r.CreatedAt).Select(r => r.Id).ToListAsync(stoppingToken);
            if (unfinished.Count > 0)
                logger.LogInformation("Resuming {Count} unfinished evaluation runs", unfinished.Count);
            foreach (var id in unfinished)
                queue.Enqueue(id);
        }

        // Runs another replica left behind (its lease lapsed) or queued without a worker: picked up here.
        var sweep = SweepAsync(stoppingToken);

        using var slots = new SemaphoreSlim(options.Value.MaxConcurrentRuns);
        var executing = new List<Task>();
        try
        {
            await foreach (var runId in queue.Reader.ReadAllAsync(stoppingToken))
            {
                await slots.WaitAsync(stoppingToken);
                executing.RemoveAll(t => t.IsCompleted);
                executing.Add(Task.Run(async () =>
                {
                    try
                    {
                        await ExecuteRunAsync(runId, stoppingToken);
                    }
                    finally
                    {
                        slots.Release();
                    }
                }, CancellationToken.None));
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // stopping: executing runs see the same token and stop where they are
        }
        await Task.WhenAll(executing);
        await sweep;
    }

    private async Task SweepAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Lease);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                await using var scope = scopes.CreateAsyncScope();
                var db = scope.ServiceProvider.GetRequiredService<EvaluationDbContext>();
                var now = DateTimeOffset.UtcNow;
                var orphans = await db.Runs.Where(r => (r.Status == RunStatus.Queued || r.Status == RunStatus.Running) && (r.LeaseUntil == null || r.LeaseUntil < now))
                    .Select(r => r.Id).ToListAsync(stoppingToken);
                foreach (var id in orphans)
                    queue.Enqueue(id);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>Renews the run's lease while it executes, and stops it when a user cancelled it through another replica.</summary>
    private async Task HeartbeatAsync(Guid runId, CancellationTokenSource cancel, CancellationToken stop)
    {
        using var timer = new PeriodicTimer(Lease / 3);
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                await using var scope = scopes.CreateAsyncScope();
                var db = scope.ServiceProvider.GetRequiredService<EvaluationDbContext>();
                if (!await RunLease.RenewAsync(db, runId, _owner, Lease, stop))
                    logger.LogWarning("Run {RunId}: lease lost to another worker", runId);
                if (await db.Runs.AnyAsync(r => r.Id == runId && r.CancelledBy != null, stop))
                    await cancel.CancelAsync();
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
    }

    private async Task ExecuteRunAsync(Guid runId, CancellationToken stoppingToken)
    {
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        if (!queue.TryBegin(runId, cancel))
            return; // already executing (queued twice)
        using var heartbeatStop = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        Task? heartbeat = null;
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            if (!await RunLease.TryClaimAsync(scope.ServiceProvider.GetRequiredService<EvaluationDbContext>(), runId, _owner, Lease, stoppingToken))
            {
                logger.LogDebug("Run {RunId} is executing in another replica", runId);
                return;
            }
            heartbeat = HeartbeatAsync(runId, cancel, heartbeatStop.Token);
            var executor = scope.ServiceProvider.GetRequiredService<RunExecutor>();
            await executor.ExecuteAsync(runId, cancel.Token, stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            logger.LogInformation("Run {RunId} interrupted by shutdown; it resumes at the next start", runId);
        }
        catch (Exception e)
        {
            // A bug or a lost database must not stop the worker: the run is marked failed where possible.
            logger.LogError(e, "Run {RunId} failed unexpectedly", runId);
            await using var scope = scopes.CreateAsyncScope();
            await scope.ServiceProvider.GetRequiredService<RunExecutor>().FailAsync(runId, $"Unexpected error: {e.Message}", CancellationToken.None);
        }
        finally
        {
            await heartbeatStop.CancelAsync();
            if (heartbeat is not null)
            {
                await heartbeat;
                try
                {
                    await using var scope = scopes.CreateAsyncScope();
                    await RunLease.ReleaseAsync(scope.ServiceProvider.GetRequiredService<EvaluationDbContext>(), runId, _owner, CancellationToken.None);
                }
                catch (Exception e) when (e is System.Data.Common.DbException or InvalidOperationException)
                {
                    // Unreleased, the lease simply lapses; another replica takes the run over then.
                    logger.LogWarning(e, "Run {RunId}: could not release its lease", runId);
                }
            }
            queue.End(runId);
        }
    }
}

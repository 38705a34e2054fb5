using System.Collections.Concurrent;
using System.Linq.Expressions;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Query;

namespace AspireTune.ServiceDefaults.Work;

/// <summary>A row of a table that <see cref="WorkQueue{TContext, T}"/> hands out to one worker at a time.</summary>
public interface ILeasedWork
{
    Guid Id { get; }

    /// <summary>Work is claimed oldest first.</summary>
    DateTimeOffset CreatedAt { get; }

    /// <summary>The worker holding the item (<see cref="WorkerIdentity.Name"/>), while <see cref="LeaseExpiresAt"/> lies ahead.</summary>
    string? LeaseOwner { get; set; }

    DateTimeOffset? LeaseExpiresAt { get; set; }
}

/// <summary>What makes a service's table a queue: which rows wait for a worker, and which were asked to stop.</summary>
public sealed class WorkQueueDefinition<T> where T : class, ILeasedWork
{
    /// <summary>Rows that are queued or executing (their lease decides whether a worker may take them).</summary>
    public required Expression<Func<T, bool>> Pending { get; init; }

    /// <summary>Rows a user asked to cancel; the holder sees it at its next heartbeat.</summary>
    public required Expression<Func<T, bool>> CancelRequested { get; init; }

    /// <summary>Further columns set by the claiming UPDATE (a status, an attempt counter).</summary>
    public Action<UpdateSettersBuilder<T>>? OnClaim { get; init; }
}

/// <summary>Lease timing of a queue.</summary>
public sealed record WorkQueueTiming(TimeSpan Lease, TimeSpan Heartbeat, TimeSpan Poll, int MaxConcurrency);

/// <summary>Why an executing item was told to stop.</summary>
public enum WorkStop
{
    None,

    /// <summary>A user cancelled it (through this or another replica).</summary>
    CancelRequested,

    /// <summary>Another worker holds the item now: this one must not write its outcome.</summary>
    LeaseLost,
}

/// <summary>The hold of one worker on one item while it executes.</summary>
public sealed class WorkLease(Guid id, CancellationToken stopping) : IDisposable
{
    private readonly CancellationTokenSource _stop = CancellationTokenSource.CreateLinkedTokenSource(stopping);
    private int _reason;

    public Guid Id { get; } = id;

    /// <summary>Cancelled when the item must stop: see <see cref="Reason"/> (None means the host is stopping).</summary>
    public CancellationToken Token => _stop.Token;

    public WorkStop Reason => (WorkStop)Volatile.Read(ref _reason);

    public void Stop(WorkStop reason)
    {
        if (Interlocked.CompareExchange(ref _reason, (int)reason, (int)WorkStop.None) == (int)WorkStop.None)
            _stop.Cancel();
    }

    public void Dispose() => _stop.Dispose();
}

/// <summary>
/// A durable work queue on a service's own table: an item is claimed with one conditional UPDATE (free, lapsed,
/// or held by this very worker identity before a restart), kept by a heartbeat and released at the end or at
/// shutdown. Exactly one worker wins each claim; a worker that dies stops renewing, and its items go to whoever
/// claims next, or to itself at once when it restarts under the same <see cref="WorkerIdentity"/>.
/// </summary>
public sealed class WorkQueue<TContext, T>(WorkerIdentity identity, WorkQueueDefinition<T> definition, WorkQueueTiming timing)
    where TContext : DbContext
    where T : class, ILeasedWork
{
    private readonly ConcurrentDictionary<Guid, WorkLease> _executing = new();
    private readonly SemaphoreSlim _signal = new(0);

    public string Owner => identity.Name;

    public WorkQueueTiming Timing => timing;

    public WorkQueueDefinition<T> Definition => definition;

    /// <summary>Wakes the worker at once (new work was written) instead of at its next poll.</summary>
    public void Nudge()
    {
        if (_signal.CurrentCount == 0)
            _signal.Release();
    }

    internal Task WaitForWorkAsync(CancellationToken ct) => _signal.WaitAsync(timing.Poll, ct);

    /// <summary>Stops the item now if it executes in this process; false when it does not (the holder sees the cancel at its heartbeat).</summary>
    public bool CancelLocal(Guid id)
    {
        if (!_executing.TryGetValue(id, out var lease))
            return false;
        lease.Stop(WorkStop.CancelRequested);
        return true;
    }

    /// <summary>Whether the item executes in this process now.</summary>
    public bool IsExecutingHere(Guid id) => _executing.ContainsKey(id);

    internal bool TryBegin(WorkLease lease) => _executing.TryAdd(lease.Id, lease);

    internal void End(Guid id) => _executing.TryRemove(id, out _);

    private IQueryable<T> Claimable(TContext db, DateTimeOffset now)
    {
        var owner = Owner;
        var busy = _executing.Keys.ToList();
        return db.Set<T>().Where(definition.Pending)
            .Where(x => x.LeaseOwner == null || x.LeaseOwner == owner || x.LeaseExpiresAt == null || x.LeaseExpiresAt < now)
            .Where(x => !busy.Contains(x.Id));
    }

    /// <summary>Claims the oldest claimable item; null when there is none (or others won every race).</summary>
    public async Task<Guid?> ClaimNextAsync(TContext db, CancellationToken ct)
    {
        var now = DateTimeOffset.UtcNow;
        var candidates = await Claimable(db, now).OrderBy(x => x.CreatedAt).Select(x => x.Id).Take(5).ToListAsync(ct);
        foreach (var id in candidates)
            if (await TryClaimAsync(db, id, ct))
                return id;
        return null;
    }

    /// <summary>Claims one item; false when another worker holds it or it is no longer pending.</summary>
    public async Task<bool> TryClaimAsync(TContext db, Guid id, CancellationToken ct)
    {
        var now = DateTimeOffset.UtcNow;
        DateTimeOffset? until = now + timing.Lease;
        var owner = Owner;
        return await Claimable(db, now).Where(x => x.Id == id).ExecuteUpdateAsync(s =>
        {
            s.SetProperty(x => x.LeaseOwner, owner).SetProperty(x => x.LeaseExpiresAt, until);
            definition.OnClaim?.Invoke(s);
        }, ct) == 1;
    }

    /// <summary>Extends the lease; false when another worker took the item over.</summary>
    public async Task<bool> RenewAsync(TContext db, Guid id, CancellationToken ct)
    {
        DateTimeOffset? until = DateTimeOffset.UtcNow + timing.Lease;
        var owner = Owner;
        return await db.Set<T>().Where(x => x.Id == id && x.LeaseOwner == owner)
            .ExecuteUpdateAsync(s => s.SetProperty(x => x.LeaseExpiresAt, until), ct) == 1;
    }

    /// <summary>Gives the item back (if this worker still holds it), for any worker to claim at once.</summary>
    public Task ReleaseAsync(TContext db, Guid id, CancellationToken ct)
    {
        var owner = Owner;
        return db.Set<T>().Where(x => x.Id == id && x.LeaseOwner == owner)
            .ExecuteUpdateAsync(s => s.SetProperty(x => x.LeaseOwner, (string?)null).SetProperty(x => x.LeaseExpiresAt, (DateTimeOffset?)null), ct);
    }

    public Task<bool> IsCancelRequestedAsync(TContext db, Guid id, CancellationToken ct) =>
        db.Set<T>().Where(x => x.Id == id).Where(definition.CancelRequested).AnyAsync(ct);
}

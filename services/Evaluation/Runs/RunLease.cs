using AspireTune.Evaluation.Data;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.Evaluation.Runs;

/// <summary>
/// One executor per run across replicas: a run is claimed with one conditional UPDATE (free, ours, or its lease
/// lapsed), kept by a heartbeat and released at the end. A replica that dies simply stops renewing.
/// </summary>
internal static class RunLease
{
    public static async Task<bool> TryClaimAsync(EvaluationDbContext db, Guid runId, string owner, TimeSpan lease, CancellationToken ct)
    {
        var now = DateTimeOffset.UtcNow;
        DateTimeOffset? until = now + lease;
        return await db.Runs
            .Where(r => r.Id == runId && (r.Owner == null || r.Owner == owner || r.LeaseUntil == null || r.LeaseUntil < now))
            .ExecuteUpdateAsync(s => s.SetProperty(r => r.Owner, owner).SetProperty(r => r.LeaseUntil, until), ct) == 1;
    }

    /// <summary>Extends the lease; false when another worker took the run over.</summary>
    public static async Task<bool> RenewAsync(EvaluationDbContext db, Guid runId, string owner, TimeSpan lease, CancellationToken ct)
    {
        DateTimeOffset? until = DateTimeOffset.UtcNow + lease;
        return await db.Runs.Where(r => r.Id == runId && r.Owner == owner)
            .ExecuteUpdateAsync(s => s.SetProperty(r => r.LeaseUntil, until), ct) == 1;
    }

    public static Task ReleaseAsync(EvaluationDbContext db, Guid runId, string owner, CancellationToken ct) =>
        db.Runs.Where(r => r.Id == runId && r.Owner == owner)
            .ExecuteUpdateAsync(s => s.SetProperty(r => r.Owner, (string?)null).SetProperty(r => r.LeaseUntil, (DateTimeOffset?)null), ct);
}

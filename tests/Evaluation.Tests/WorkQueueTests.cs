using AspireTune.Evaluation.Data;
using AspireTune.Evaluation.Runs;
using AspireTune.ServiceDefaults.Data;
using AspireTune.ServiceDefaults.Work;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.Evaluation.Tests;

/// <summary>The shared durable work queue, on the Evaluation service's runs table (FineTuning's jobs use the same component).</summary>
public sealed class WorkQueueTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static readonly WorkQueueTiming Timing = new(TimeSpan.FromMinutes(1), TimeSpan.FromSeconds(20), TimeSpan.FromSeconds(1), 2);

    private static async Task<(string Folder, EvaluationDbContext Db, Guid RunId)> DatabaseWithRunAsync()
    {
        var folder = TestSupport.TestInfrastructure.TempDataFolder("lease");
        var db = new EvaluationDbContext(new DbContextOptionsBuilder<EvaluationDbContext>().UseServiceSqlite($"Data Source={Path.Combine(folder, "evaluationdb.db")}").Options);
        await db.Database.EnsureCreatedAsync(Ct);
        var run = new RunEntity { Id = Guid.NewGuid(), Status = RunStatus.Queued, Spec = RunSpec.None, DatasetArtifactId = "d", DatasetSha256 = "s", CreatedAt = DateTimeOffset.UtcNow };
        db.Runs.Add(run);
        await db.SaveChangesAsync(Ct);
        return (folder, db, run.Id);
    }

    private static WorkQueue<EvaluationDbContext, RunEntity> Queue(WorkerIdentity identity) => new(identity, RunWorker.Definition, Timing);

    [Fact]
    public async Task TryClaim_HeldByAnotherWorker_FailsUntilTheLeaseLapses()
    {
        var (folder, db, id) = await DatabaseWithRunAsync();
        await using var _ = db;
        using var a = WorkerIdentity.Acquire(folder, "evaluation");
        using var b = WorkerIdentity.Acquire(folder, "evaluation");
        var (replicaA, replicaB) = (Queue(a), Queue(b));

        (await replicaA.TryClaimAsync(db, id, Ct)).Should().BeTrue();
        (await replicaB.TryClaimAsync(db, id, Ct)).Should().BeFalse();
        (await replicaB.ClaimNextAsync(db, Ct)).Should().BeNull();
        (await replicaB.RenewAsync(db, id, Ct)).Should().BeFalse();
        (await replicaA.RenewAsync(db, id, Ct)).Should().BeTrue();

        // replica A dies on another host: its lease is not renewed and lapses.
        await db.Runs.Where(r => r.Id == id).ExecuteUpdateAsync(s => s.SetProperty(r => r.LeaseExpiresAt, DateTimeOffset.UtcNow.AddSeconds(-1)), Ct);
        (await replicaB.ClaimNextAsync(db, Ct)).Should().Be(id);
        (await db.Runs.AsNoTracking().SingleAsync(r => r.Id == id, Ct)).LeaseOwner.Should().Be(b.Name);
    }

    [Fact]
    public async Task Release_ByTheOwner_FreesTheRun()
    {
        var (folder, db, id) = await DatabaseWithRunAsync();
        await using var _ = db;
        using var a = WorkerIdentity.Acquire(folder, "evaluation");
        using var b = WorkerIdentity.Acquire(folder, "evaluation");
        var (replicaA, replicaB) = (Queue(a), Queue(b));
        (await replicaA.TryClaimAsync(db, id, Ct)).Should().BeTrue();

        await replicaB.ReleaseAsync(db, id, Ct);
        (await replicaB.TryClaimAsync(db, id, Ct)).Should().BeFalse();
        await replicaA.ReleaseAsync(db, id, Ct);
        (await replicaB.TryClaimAsync(db, id, Ct)).Should().BeTrue();
    }

    [Fact]
    public async Task ClaimNext_RestartedUnderTheSameIdentity_TakesItsOwnLeaseBackBeforeItLapses()
    {
        var (folder, db, id) = await DatabaseWithRunAsync();
        await using var _ = db;
        var before = WorkerIdentity.Acquire(folder, "evaluation");
        (await Queue(before).TryClaimAsync(db, id, Ct)).Should().BeTrue();
        using var replica = WorkerIdentity.Acquire(folder, "evaluation");

        before.Dispose(); // the process dies: its lock goes with it, its lease (a minute) does not
        using var restarted = WorkerIdentity.Acquire(folder, "evaluation");

        restarted.Name.Should().Be(before.Name).And.NotBe(replica.Name);
        (await Queue(replica).ClaimNextAsync(db, Ct)).Should().BeNull("the lease has not lapsed");
        (await Queue(restarted).ClaimNextAsync(db, Ct)).Should().Be(id);
    }

    [Fact]
    public async Task ClaimNext_ItemExecutingInThisProcess_IsNotClaimedAgain()
    {
        var (folder, db, id) = await DatabaseWithRunAsync();
        await using var _ = db;
        using var identity = WorkerIdentity.Acquire(folder, "evaluation");
        var queue = Queue(identity);
        (await queue.ClaimNextAsync(db, Ct)).Should().Be(id);
        using var lease = new WorkLease(id, Ct);
        queue.TryBegin(lease).Should().BeTrue();

        (await queue.ClaimNextAsync(db, Ct)).Should().BeNull();
        queue.CancelLocal(id).Should().BeTrue();
        lease.Reason.Should().Be(WorkStop.CancelRequested);
        lease.Token.IsCancellationRequested.Should().BeTrue();
    }

    [Fact]
    public async Task IsCancelRequested_CancelWrittenByAnotherReplica_IsSeenByTheHolder()
    {
        var (folder, db, id) = await DatabaseWithRunAsync();
        await using var _ = db;
        using var identity = WorkerIdentity.Acquire(folder, "evaluation");
        var queue = Queue(identity);
        (await queue.TryClaimAsync(db, id, Ct)).Should().BeTrue();
        (await queue.IsCancelRequestedAsync(db, id, Ct)).Should().BeFalse();

        await db.Runs.Where(r => r.Id == id).ExecuteUpdateAsync(s => s.SetProperty(r => r.CancelledBy, "alice"), Ct);

        (await queue.IsCancelRequestedAsync(db, id, Ct)).Should().BeTrue();
    }
}

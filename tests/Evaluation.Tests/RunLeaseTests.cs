using AspireTune.Evaluation.Data;
using AspireTune.Evaluation.Runs;
using AspireTune.ServiceDefaults.Data;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.Evaluation.Tests;

public sealed class RunLeaseTests
{
    private static async Task<(EvaluationDbContext Db, Guid RunId)> DatabaseWithRunAsync()
    {
        var path = Path.Combine(TestSupport.TestInfrastructure.TempDataFolder("lease"), "evaluationdb.db");
        var db = new EvaluationDbContext(new DbContextOptionsBuilder<EvaluationDbContext>().UseServiceSqlite($"Data Source={path}").Options);
        await db.Database.EnsureCreatedAsync(TestContext.Current.CancellationToken);
        var run = new RunEntity { Id = Guid.NewGuid(), Status = RunStatus.Queued, SpecJson = "{}", DatasetArtifactId = "d", DatasetSha256 = "s", CreatedAt = DateTimeOffset.UtcNow };
        db.Runs.Add(run);
        await db.SaveChangesAsync(TestContext.Current.CancellationToken);
        return (db, run.Id);
    }

    [Fact]
    public async Task TryClaim_HeldByAnotherWorker_FailsUntilTheLeaseLapses()
    {
        var ct = TestContext.Current.CancellationToken;
        var (db, id) = await DatabaseWithRunAsync();
        await using var _ = db;

        (await RunLease.TryClaimAsync(db, id, "replica-a", TimeSpan.FromMinutes(1), ct)).Should().BeTrue();
        (await RunLease.TryClaimAsync(db, id, "replica-b", TimeSpan.FromMinutes(1), ct)).Should().BeFalse();
        (await RunLease.RenewAsync(db, id, "replica-b", TimeSpan.FromMinutes(1), ct)).Should().BeFalse();
        (await RunLease.RenewAsync(db, id, "replica-a", TimeSpan.FromMinutes(1), ct)).Should().BeTrue();

        // replica-a dies: its lease is not renewed and lapses.
        await db.Runs.Where(r => r.Id == id).ExecuteUpdateAsync(s => s.SetProperty(r => r.LeaseUntil, DateTimeOffset.UtcNow.AddSeconds(-1)), ct);
        (await RunLease.TryClaimAsync(db, id, "replica-b", TimeSpan.FromMinutes(1), ct)).Should().BeTrue();
        (await db.Runs.AsNoTracking().SingleAsync(r => r.Id == id, ct)).Owner.Should().Be("replica-b");
    }

    [Fact]
    public async Task Release_ByTheOwner_FreesTheRun()
    {
        var ct = TestContext.Current.CancellationToken;
        var (db, id) = await DatabaseWithRunAsync();
        await using var _ = db;
        (await RunLease.TryClaimAsync(db, id, "replica-a", TimeSpan.FromMinutes(1), ct)).Should().BeTrue();

        await RunLease.ReleaseAsync(db, id, "replica-b", ct);
        (await RunLease.TryClaimAsync(db, id, "replica-c", TimeSpan.FromMinutes(1), ct)).Should().BeFalse();
        await RunLease.ReleaseAsync(db, id, "replica-a", ct);
        (await RunLease.TryClaimAsync(db, id, "replica-c", TimeSpan.FromMinutes(1), ct)).Should().BeTrue();
    }
}

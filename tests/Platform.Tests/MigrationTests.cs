using AspireTune.Evaluation.Data;
using AspireTune.ServiceDefaults.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.Extensions.Logging.Abstractions;

namespace AspireTune.Platform.Tests;

/// <summary>
/// EF Core migrations per provider, applied at start (<see cref="ServiceDatabase.PrepareAsync"/>): a database left at
/// an older migration gets the later ones, among them a column rename that keeps the data, on SQLite and PostgreSQL.
/// </summary>
public sealed class MigrationTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static TheoryData<string> Providers => ["sqlite", "postgresql"];

    private static string NewDatabase(string provider) => provider == "sqlite"
        ? $"Data Source={Path.Combine(TestSupport.TestInfrastructure.TempDataFolder("migrations"), "evaluationdb.db")}"
        : TestSupport.TestInfrastructure.PostgresDatabase("migrations");

    /// <summary>A context as a service opens it; a new one per step, as a restarted process would.</summary>
    private static EvaluationDbContext Open(string provider, string connectionString)
    {
        var options = new DbContextOptionsBuilder<EvaluationDbContext>();
        if (provider == "sqlite")
            options.UseServiceSqlite(connectionString);
        else
            options.UseNpgsql(connectionString).ReplaceService<IMigrationsAssembly, ProviderMigrationsAssembly>();
        return new EvaluationDbContext(options.Options);
    }

    [Theory]
    [MemberData(nameof(Providers))]
    public async Task Prepare_DatabaseAtTheInitialMigration_AppliesTheRestAndTheRenamedLeaseColumnsKeepTheirValues(string provider)
    {
        var database = NewDatabase(provider);
        await using var older = Open(provider, database);
        var migrations = older.Database.GetMigrations().ToList();
        migrations.Should().HaveCountGreaterThanOrEqualTo(3).And.Contain(m => m.EndsWith("_RenameRunLeaseColumns"));
        await older.GetService<IMigrator>().MigrateAsync(migrations[0], Ct);
        var id = Guid.NewGuid();
        var until = DateTimeOffset.UtcNow.AddMinutes(5);
        // A run leased by a worker of the older version, in the older columns "Owner" and "LeaseUntil".
        // SQLite keeps dates as UTC ticks, PostgreSQL as timestamptz.
        object Date(DateTimeOffset d) => provider == "sqlite" ? d.UtcTicks : d;
        await older.Database.ExecuteSqlRawAsync("""
            INSERT INTO runs ("Id", "Status", "SpecJson", "DatasetArtifactId", "DatasetSha256", "DatasetLength", "TotalCalls", "CreatedAt", "Owner", "LeaseUntil")
            VALUES ({0}, 'Running', '{{}}', 'd', 's', 0, 0, {1}, 'host/evaluation/0', {2})
            """, [provider == "sqlite" ? id.ToString().ToUpperInvariant() : id, Date(DateTimeOffset.UtcNow), Date(until)], Ct);

        await using var db = Open(provider, database);
        await ServiceDatabase.PrepareAsync(db, NullLogger.Instance, Ct);

        (await db.Database.GetAppliedMigrationsAsync(Ct)).Should().Equal(migrations);
        db.ChangeTracker.Clear();
        var run = await db.Runs.AsNoTracking().SingleAsync(r => r.Id == id, Ct);
        run.LeaseOwner.Should().Be("host/evaluation/0");
        run.LeaseExpiresAt.Should().BeCloseTo(until, TimeSpan.FromMilliseconds(1));
        var columns = await ColumnsAsync(db, "runs");
        columns.Should().Contain(["LeaseOwner", "LeaseExpiresAt"]).And.NotContain(["Owner", "LeaseUntil"]);
        await db.Database.EnsureDeletedAsync(Ct);
    }

    [Theory]
    [MemberData(nameof(Providers))]
    public async Task Prepare_DatabaseCreatedBeforeMigrations_IsCompletedBaselinedAndOpens(string provider)
    {
        var database = NewDatabase(provider);
        await using var older = Open(provider, database);
        var migrations = older.Database.GetMigrations().ToList();
        // What EnsureCreated of the version before migrations left: the initial schema and no history.
        await older.GetService<IMigrator>().MigrateAsync(migrations[0], Ct);
        await older.Database.ExecuteSqlRawAsync("DROP TABLE \"__EFMigrationsHistory\"", Ct);

        await using var db = Open(provider, database);
        await ServiceDatabase.PrepareAsync(db, NullLogger.Instance, Ct);

        (await db.Database.GetAppliedMigrationsAsync(Ct)).Should().Equal(migrations);
        (await db.Runs.CountAsync(Ct)).Should().Be(0);
        (await db.Set<ServiceDefaults.Messaging.OutboxMessage>().CountAsync(Ct)).Should().Be(0, "the outbox table, added after the initial schema, exists");
        (await ColumnsAsync(db, "runs")).Should().Contain(["LeaseOwner", "LeaseExpiresAt"]);
        await db.Database.EnsureDeletedAsync(Ct);
    }

    [Theory]
    [MemberData(nameof(Providers))]
    public async Task Prepare_NewDatabase_IsCreatedByTheMigrationsAndMatchesTheModel(string provider)
    {
        await using var db = Open(provider, NewDatabase(provider));

        await ServiceDatabase.PrepareAsync(db, NullLogger.Instance, Ct);

        (await db.Database.GetAppliedMigrationsAsync(Ct)).Should().Equal(db.Database.GetMigrations());
        db.Database.HasPendingModelChanges().Should().BeFalse("every model change has its migration");
        await db.Database.EnsureDeletedAsync(Ct);
    }

    private static async Task<List<string>> ColumnsAsync(DbContext db, string table) =>
        await db.Database.SqlQueryRaw<string>(db.Database.IsSqlite()
            ? $"SELECT name AS \"Value\" FROM pragma_table_info('{table}')"
            : $"SELECT column_name AS \"Value\" FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '{table}'").ToListAsync(Ct);
}

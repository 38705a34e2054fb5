using AspireTune.ServiceDefaults.Messaging;
using Microsoft.EntityFrameworkCore;
using System.Reflection;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AspireTune.ServiceDefaults.Data;

/// <summary>
/// Each service owns one database: PostgreSQL when <c>ConnectionStrings:&lt;name&gt;</c> holds an Npgsql
/// connection string (as Aspire injects), SQLite otherwise (<c>&lt;data&gt;/&lt;name&gt;.db</c>, or the
/// <c>Data Source=...</c> given). At start, before the host accepts work, the service's EF Core migrations for
/// its provider are applied (<see cref="PrepareAsync{TContext}"/>).
/// </summary>
public static class ServiceDatabase
{
    public static IHostApplicationBuilder AddServiceDatabase<TContext>(this IHostApplicationBuilder builder, string connectionName)
        where TContext : DbContext
    {
        var connectionString = builder.Configuration.GetConnectionString(connectionName);
        var provider = DatabaseProviders.Detect(connectionString);
        builder.Services.AddSingleton<OutboxSignal<TContext>>();
        builder.Services.AddDbContext<TContext>((sp, options) =>
        {
            options.AddInterceptors(sp.GetRequiredService<OutboxSignal<TContext>>());
            if (provider == DatabaseProvider.PostgreSql)
                options.UseNpgsql(connectionString, npgsql => npgsql.EnableRetryOnFailure()).ReplaceService<IMigrationsAssembly, ProviderMigrationsAssembly>();
            else
            {
                var sqlite = string.IsNullOrWhiteSpace(connectionString)
                    ? $"Data Source={Path.Combine(sp.GetRequiredService<DataRoot>().Path, connectionName + ".db")}"
                    : connectionString;
                options.UseServiceSqlite(sqlite);
            }
        });
        builder.Services.AddHostedService<SchemaInitializer<TContext>>();
        builder.Services.AddOptions<OutboxOptions>().BindConfiguration(OutboxOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddHostedService<OutboxDispatcher<TContext>>();
        builder.Services.AddHealthChecks().AddCheck<DatabaseHealthCheck<TContext>>(connectionName, tags: ["ready"]);
        return builder;
    }

    /// <summary>SQLite as every service uses it (dates stored as sortable UTC ticks); for tools and tests that open a service's file.</summary>
    public static DbContextOptionsBuilder UseServiceSqlite(this DbContextOptionsBuilder options, string connectionString) =>
        options.UseSqlite(connectionString).ReplaceService<IModelCustomizer, SqliteDateTimeOffsetModelCustomizer>()
            .ReplaceService<IMigrationsAssembly, ProviderMigrationsAssembly>();

    /// <inheritdoc cref="UseServiceSqlite(DbContextOptionsBuilder, string)"/>
    public static DbContextOptionsBuilder<TContext> UseServiceSqlite<TContext>(this DbContextOptionsBuilder<TContext> options, string connectionString)
        where TContext : DbContext =>
        (DbContextOptionsBuilder<TContext>)UseServiceSqlite((DbContextOptionsBuilder)options, connectionString);

    /// <summary>
    /// Brings the database to the service's latest migration: a new database is created by the migrations; one that
    /// has its migrations history gets the migrations it lacks; one created before migrations existed (by
    /// <c>EnsureCreated</c>, no history) first gets the tables, indexes and nullable columns it lacks, as the code
    /// before migrations did, and is then recorded as being at the latest migration (baselined).
    /// </summary>
    public static async Task PrepareAsync<TContext>(TContext db, ILogger logger, CancellationToken ct) where TContext : DbContext
    {
        if (db.Database.IsSqlite())
        {
            // WAL lets readers (API) and the writer (consumers, trainers) work at once.
            await db.Database.OpenConnectionAsync(ct);
            await db.Database.ExecuteSqlRawAsync("PRAGMA journal_mode=WAL;", ct);
            await db.Database.CloseConnectionAsync();
        }
        // Replicas of a service starting together would both baseline their shared database: one at a time (a
        // session-level advisory lock on this context's connection; the migrations themselves take EF's own lock).
        var locked = db.Database.IsNpgsql() && await db.Database.CanConnectAsync(ct);
        if (locked)
        {
            await db.Database.OpenConnectionAsync(ct);
            await db.Database.ExecuteSqlRawAsync("SELECT pg_advisory_lock(7415)", ct);
        }
        try
        {
            await MigrateAsync(db, logger, ct);
        }
        finally
        {
            if (locked)
            {
                await db.Database.ExecuteSqlRawAsync("SELECT pg_advisory_unlock(7415)", CancellationToken.None);
                await db.Database.CloseConnectionAsync();
            }
        }
    }

    private static async Task MigrateAsync<TContext>(TContext db, ILogger logger, CancellationToken ct) where TContext : DbContext
    {
        var history = db.GetService<IHistoryRepository>();
        var baselined = 0;
        if (await db.Database.CanConnectAsync(ct) && !await HasHistoryAsync(db, ct) && await SchemaInitializer<TContext>.CountSchemaObjectsAsync(db, ct) > 0)
        {
            var added = await SchemaInitializer<TContext>.AddMissingTablesAsync(db, ct) + await SchemaInitializer<TContext>.AddMissingColumnsAsync(db, logger, ct);
            await history.CreateIfNotExistsAsync(ct);
            var version = typeof(DbContext).Assembly.GetCustomAttribute<System.Reflection.AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "10.0.0";
            foreach (var id in db.Database.GetMigrations())
            {
                await db.Database.ExecuteSqlRawAsync(history.GetInsertScript(new HistoryRow(id, version)), ct);
                baselined++;
            }
            logger.LogInformation("{Context} database created before migrations: {Added} table(s), index(es) or column(s) added, baselined at {Count} migration(s)", typeof(TContext).Name, added, baselined);
        }
        var pending = (await db.Database.GetPendingMigrationsAsync(ct)).ToList();
        await db.Database.MigrateAsync(ct);
        logger.LogInformation("{Context} database ready ({Provider}); {Count} migration(s) applied{List}", typeof(TContext).Name, db.Database.ProviderName,
            pending.Count, pending.Count > 0 ? ": " + string.Join(", ", pending) : "");
    }

    private static async Task<bool> HasHistoryAsync(DbContext db, CancellationToken ct) =>
        await db.Database.SqlQueryRaw<long>(db.Database.IsSqlite()
            ? "SELECT COUNT(*) AS \"Value\" FROM sqlite_master WHERE type = 'table' AND name = '__EFMigrationsHistory'"
            : "SELECT COUNT(*) AS \"Value\" FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = '__EFMigrationsHistory'").SingleAsync(ct) > 0;

    private sealed class SchemaInitializer<TContext>(IServiceProvider services, ILogger<SchemaInitializer<TContext>> logger) : IHostedService
        where TContext : DbContext
    {
        public async Task StartAsync(CancellationToken cancellationToken)
        {
            await using var scope = services.CreateAsyncScope();
            await PrepareAsync(scope.ServiceProvider.GetRequiredService<TContext>(), logger, cancellationToken);
        }

        internal static async Task<int> AddMissingTablesAsync(TContext db, CancellationToken ct)
        {
            var statements = db.Database.GenerateCreateScript().ReplaceLineEndings("\n")
                .Split(";\n", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(IfNotExists)
                .OfType<string>()
                .ToList();
            var before = await CountSchemaObjectsAsync(db, ct);
            foreach (var statement in statements)
                await db.Database.ExecuteSqlRawAsync(statement, ct);
            return await CountSchemaObjectsAsync(db, ct) - before;
        }

        /// <summary>
        /// Nullable columns a newer version added to an existing table are added (existing rows get NULL, which is
        /// what the code expects of them). A missing required column cannot be filled safely: it is reported.
        /// </summary>
        internal static async Task<int> AddMissingColumnsAsync(TContext db, ILogger logger, CancellationToken ct)
        {
            var added = 0;
            foreach (var entity in db.Model.GetEntityTypes().Where(e => e.GetTableName() is not null && e.GetViewName() is null))
            {
                var table = entity.GetTableName()!;
                var store = Microsoft.EntityFrameworkCore.Metadata.StoreObjectIdentifier.Table(table, entity.GetSchema());
                var sql = db.Database.IsSqlite()
                    ? $"SELECT name AS \"Value\" FROM pragma_table_info('{table.Replace("'", "''")}')"
                    : $"SELECT column_name AS \"Value\" FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '{table.Replace("'", "''")}'";
                var existing = (await db.Database.SqlQueryRaw<string>(sql).ToListAsync(ct)).ToHashSet(StringComparer.Ordinal);
                if (existing.Count == 0)
                    continue;
                foreach (var property in entity.GetProperties())
                {
                    var column = property.GetColumnName(store);
                    if (column is null || existing.Contains(column))
                        continue;
                    if (!property.IsColumnNullable(store))
                    {
                        logger.LogError("Table {Table} lacks the required column {Column}: migrate it by hand or start from a new database", table, column);
                        continue;
                    }
                    // Table, column and type come from the model, never from input.
                    var alter = $"ALTER TABLE \"{table}\" ADD COLUMN \"{column}\" {property.GetColumnType(store)} NULL";
                    await db.Database.ExecuteSqlRawAsync(alter, ct);
                    added++;
                }
            }
            return added;
        }

        /// <summary>The statement made idempotent; null for anything but a table or index (never re-run).</summary>
        private static string? IfNotExists(string statement)
        {
            foreach (var prefix in new[] { "CREATE TABLE ", "CREATE UNIQUE INDEX ", "CREATE INDEX " })
                if (statement.StartsWith(prefix, StringComparison.Ordinal))
                    return prefix + "IF NOT EXISTS " + statement[prefix.Length..];
            return null;
        }

        internal static async Task<int> CountSchemaObjectsAsync(TContext db, CancellationToken ct)
        {
            var sql = db.Database.IsSqlite()
                ? "SELECT COUNT(*) AS \"Value\" FROM sqlite_master WHERE type IN ('table', 'index')"
                : "SELECT (SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema()) + (SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema()) AS \"Value\"";
            return (int)await db.Database.SqlQueryRaw<long>(sql).SingleAsync(ct);
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private sealed class DatabaseHealthCheck<TContext>(TContext db) : Microsoft.Extensions.Diagnostics.HealthChecks.IHealthCheck
        where TContext : DbContext
    {
        public async Task<Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult> CheckHealthAsync(
            Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckContext context, CancellationToken cancellationToken = default) =>
            await db.Database.CanConnectAsync(cancellationToken)
                ? Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult.Healthy()
                : Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult.Unhealthy("The database cannot be reached.");
    }
}

public enum DatabaseProvider
{
    Sqlite,
    PostgreSql,
}

public static class DatabaseProviders
{
    /// <summary>Npgsql connection strings name a Host; anything else (or nothing) is SQLite.</summary>
    public static DatabaseProvider Detect(string? connectionString) =>
        connectionString is not null && connectionString.Contains("Host=", StringComparison.OrdinalIgnoreCase)
            ? DatabaseProvider.PostgreSql
            : DatabaseProvider.Sqlite;
}

/// <summary>
/// SQLite has no date type: EF stores DateTimeOffset as text and refuses to sort or compare it in SQL. Every
/// DateTimeOffset becomes UTC ticks (a sortable integer) in SQLite databases; PostgreSQL keeps timestamptz.
/// </summary>
internal sealed class SqliteDateTimeOffsetModelCustomizer(ModelCustomizerDependencies dependencies) : RelationalModelCustomizer(dependencies)
{
    public override void Customize(ModelBuilder modelBuilder, DbContext context)
    {
        base.Customize(modelBuilder, context);
        var converter = new Microsoft.EntityFrameworkCore.Storage.ValueConversion.ValueConverter<DateTimeOffset, long>(
            v => v.UtcTicks, v => new DateTimeOffset(v, TimeSpan.Zero));
        foreach (var entity in modelBuilder.Model.GetEntityTypes())
            foreach (var property in entity.GetProperties())
                if (property.ClrType == typeof(DateTimeOffset) || property.ClrType == typeof(DateTimeOffset?))
                    property.SetValueConverter(converter);
    }
}

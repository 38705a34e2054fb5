using System.Reflection;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace AspireTune.ServiceDefaults.Data;

/// <summary>
/// Each service keeps one migration set per provider in its own assembly, in the namespaces
/// <c>...Migrations.Sqlite</c> and <c>...Migrations.PostgreSql</c> (the SQL and column types differ). EF would see both
/// sets as one; this keeps the migrations and the model snapshot of the provider in use.
/// </summary>
public sealed class ProviderMigrationsAssembly(ICurrentDbContext current, IMigrationsIdGenerator ids) : IMigrationsAssembly
{
    private IReadOnlyDictionary<string, TypeInfo>? _migrations;
    private ModelSnapshot? _snapshot;
    private bool _snapshotLoaded;

    /// <summary>The last namespace segment of the provider's migrations: <c>PostgreSql</c> or <c>Sqlite</c>.</summary>
    public static string FolderOf(DbContext db) => db.Database.IsNpgsql() ? "PostgreSql" : "Sqlite";

    private Type ContextType => current.Context.GetType();

    private string Suffix => "." + FolderOf(current.Context);

    public Assembly Assembly => ContextType.Assembly;

    private bool Ours(Type type) =>
        type.GetCustomAttribute<DbContextAttribute>()?.ContextType == ContextType && type.Namespace?.EndsWith(Suffix, StringComparison.Ordinal) == true;

    public IReadOnlyDictionary<string, TypeInfo> Migrations => _migrations ??= Assembly.DefinedTypes
        .Where(t => t.IsSubclassOf(typeof(Migration)) && !t.IsAbstract && Ours(t) && t.GetCustomAttribute<MigrationAttribute>() is not null)
        .Select(t => (Id: t.GetCustomAttribute<MigrationAttribute>()!.Id, Type: t))
        .OrderBy(m => m.Id, StringComparer.Ordinal)
        .ToDictionary(m => m.Id, m => m.Type);

    public ModelSnapshot? ModelSnapshot
    {
        get
        {
            if (!_snapshotLoaded)
            {
                var type = Assembly.DefinedTypes.FirstOrDefault(t => t.IsSubclassOf(typeof(ModelSnapshot)) && !t.IsAbstract && Ours(t));
                _snapshot = type is null ? null : (ModelSnapshot)Activator.CreateInstance(type.AsType())!;
                _snapshotLoaded = true;
            }
            return _snapshot;
        }
    }

    public string? FindMigrationId(string nameOrId) => Migrations.Keys.FirstOrDefault(id =>
        string.Equals(id, nameOrId, StringComparison.OrdinalIgnoreCase) || string.Equals(ids.GetName(id), nameOrId, StringComparison.OrdinalIgnoreCase));

    public Migration CreateMigration(TypeInfo migrationClass, string activeProvider)
    {
        var migration = (Migration)Activator.CreateInstance(migrationClass.AsType())!;
        migration.ActiveProvider = activeProvider;
        return migration;
    }
}

using System.Net;
using System.Net.Http.Json;
using Microsoft.Data.Sqlite;

namespace AspireTune.Platform.Tests;

public sealed class SchemaTests
{
    [Fact]
    public async Task ExistingDatabaseFromAnOlderVersion_GetsTheNewTablesAtStart()
    {
        var data = TestSupport.TestInfrastructure.TempDataFolder("schema");
        // A database an older version left: it has tables, so EnsureCreated alone would add nothing.
        await using (var connection = new SqliteConnection($"Data Source={Path.Combine(data, "comparisondb.db")}"))
        {
            await connection.OpenAsync(TestContext.Current.CancellationToken);
            await using var command = connection.CreateCommand();
            command.CommandText = "CREATE TABLE processed_messages (\"MessageId\" TEXT NOT NULL, \"Consumer\" TEXT NOT NULL, \"ProcessedAt\" INTEGER NOT NULL, PRIMARY KEY (\"MessageId\", \"Consumer\"));";
            await command.ExecuteNonQueryAsync(TestContext.Current.CancellationToken);
        }
        SqliteConnection.ClearAllPools();

        var (app, http) = await EmbeddedExperimentTests.StartEmbeddedAsync(data);
        await using var _ = app;

        var response = await http.GetAsync("api/experiments", TestContext.Current.CancellationToken);
        response.StatusCode.Should().Be(HttpStatusCode.OK);
    }

    [Fact]
    public async Task ExistingTableWithoutNewNullableColumns_GetsThemAtStart()
    {
        var data = TestSupport.TestInfrastructure.TempDataFolder("schema-columns");
        // An experiments table as an older version might have left it: required columns only.
        await using (var connection = new SqliteConnection($"Data Source={Path.Combine(data, "comparisondb.db")}"))
        {
            await connection.OpenAsync(TestContext.Current.CancellationToken);
            await using var command = connection.CreateCommand();
            command.CommandText = """
                CREATE TABLE experiments ("Id" TEXT NOT NULL PRIMARY KEY, "Name" TEXT NOT NULL, "Status" TEXT NOT NULL, "Step" TEXT NOT NULL,
                    "CreatedAt" INTEGER NOT NULL, "UpdatedAt" INTEGER NOT NULL, "RequestJson" TEXT NOT NULL, "Version" INTEGER NOT NULL);
                INSERT INTO experiments VALUES ('0D8E1B52-7A6C-4E1F-9D42-3C3A7B1E2F10', 'old', 'Succeeded', 'done', 0, 0, '{}', 1);
                """;
            await command.ExecuteNonQueryAsync(TestContext.Current.CancellationToken);
        }
        SqliteConnection.ClearAllPools();

        var (app, http) = await EmbeddedExperimentTests.StartEmbeddedAsync(data);
        await using var _ = app;

        var list = await http.GetFromJsonAsync<System.Text.Json.Nodes.JsonObject>("api/experiments", TestContext.Current.CancellationToken);
        list!["items"]![0]!["name"]!.GetValue<string>().Should().Be("old");
        list["items"]![0]!["winner"].Should().BeNull();
    }
}

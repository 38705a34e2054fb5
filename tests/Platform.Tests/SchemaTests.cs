using System.Net;
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
}

using System.Net.Http.Json;
using AspireTune.TestSupport;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;

namespace AspireTune.Retrieval.Tests;

/// <summary>The Retrieval service in process: its own data folder, SQLite, the in-memory bus, the embedded index unless told otherwise.</summary>
internal sealed class RetrievalHost(string? dataFolder = null, IReadOnlyDictionary<string, string>? settings = null) : WebApplicationFactory<Program>
{
    public string DataFolder { get; } = dataFolder ?? TestInfrastructure.TempDataFolder("retrieval");

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting("ASPIRETUNE_DATA", DataFolder);
        // Whatever the machine's environment says, these tests run on the in-process defaults unless a test asks otherwise.
        builder.UseSetting("ConnectionStrings:messaging", "");
        builder.UseSetting("ConnectionStrings:retrievaldb", "");
        builder.UseSetting("ConnectionStrings:vectordb", "");
        builder.UseSetting("ConnectionStrings:vectordb_http", "");
        foreach (var (key, value) in settings ?? new Dictionary<string, string>())
            builder.UseSetting(key, value);
    }

    public async Task<HttpResponseMessage> CreateCollectionAsync(string name, object? extra = null)
    {
        var client = CreateClient();
        var body = new Dictionary<string, object?> { ["name"] = name };
        if (extra is not null)
            foreach (var p in extra.GetType().GetProperties())
                body[p.Name] = p.GetValue(extra);
        return await client.PostAsJsonAsync("/api/retrieval/collections", body, TestContext.Current.CancellationToken);
    }
}

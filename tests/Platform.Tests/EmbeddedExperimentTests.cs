using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using AspireTune.Cli;
using AspireTune.MockOpenAI;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace AspireTune.Platform.Tests;

/// <summary>
/// The workflow in the embedded host: all four services in one process, in-memory bus, SQLite, embedded index,
/// a hosted model played by a real OpenAI-compatible server on 127.0.0.1.
/// </summary>
public sealed class EmbeddedExperimentTests
{
    internal static string SamplePath => Path.Combine(RepositoryRoot(), "samples", "spam-assassin", "spam.jsonl");

    internal static string RepositoryRoot() => TestSupport.TestInfrastructure.RepositoryRoot();

    internal static async Task<(WebApplication App, HttpClient Http)> StartEmbeddedAsync(string data, params string[] settings)
    {
        var app = EmbeddedHost.Build(["--urls=http://127.0.0.1:0", $"--ASPIRETUNE_DATA={data}", .. settings]);
        await app.StartAsync(TestContext.Current.CancellationToken);
        var url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        EmbeddedHost.PointServicesAt(app, url);
        return (app, new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromMinutes(2) });
    }

    internal static async Task<JsonObject> WaitForExperimentAsync(HttpClient http, Guid id, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var experiment = (await http.GetFromJsonAsync<JsonObject>($"api/experiments/{id}", TestContext.Current.CancellationToken))!;
            if (experiment["status"]!.GetValue<string>() is "succeeded" or "failed" or "cancelled")
                return experiment;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException("Experiment did not settle: " + experiment.ToJsonString());
            await Task.Delay(250, TestContext.Current.CancellationToken);
        }
    }

    [Fact]
    public async Task Experiment_WithHostedModelRetrievalAndKnn_CompletesWithDecisionAndReport()
    {
        var ct = TestContext.Current.CancellationToken;
        // The "hosted model": calls a message spam when it reads like one, else ham.
        await using var model = await MockOpenAIServer.StartAsync(configure: o =>
        {
            o.Rules.Add(new MockRule { Pattern = @"Message:[\s\S]*\b(click|free|money|offer|unsubscribe|remove|order|\$)", Reply = "spam" });
            o.Fallback = "ham";
        }, ct: ct);
        var (app, http) = await StartEmbeddedAsync(TestSupport.TestInfrastructure.TempDataFolder("embedded"));
        await using var _ = app;

        (await http.PutAsJsonAsync("api/evaluation/models/mock-gpt", new
        {
            id = "mock-gpt", kind = "OpenAICompatible", baseUrl = model.BaseUrl, model = "mock-gpt",
            inputPricePerMillion = 0.15, outputPricePerMillion = 0.6, maxConcurrency = 8,
        }, ct)).EnsureSuccessStatusCode();

        var response = await http.PostAsJsonAsync("api/experiments", new
        {
            name = "spam-embedded",
            dataset = await File.ReadAllTextAsync(SamplePath, ct),
            candidates = new[] { "prompted", "retrieval", "knn" },
            modelEndpoints = new[] { "mock-gpt" },
        }, ct);
        response.StatusCode.Should().Be(HttpStatusCode.Accepted);
        var id = (await response.Content.ReadFromJsonAsync<JsonObject>(ct))!["id"]!.GetValue<Guid>();

        var experiment = await WaitForExperimentAsync(http, id, TimeSpan.FromMinutes(3));

        experiment["status"]!.GetValue<string>().Should().Be("succeeded", experiment.ToJsonString());
        experiment["candidates"]!.AsArray().Select(c => (c!["name"]!.GetValue<string>(), c["status"]!.GetValue<string>()))
            .Should().BeEquivalentTo([("knn", "succeeded"), ("prompted:mock-gpt", "succeeded"), ("retrieval:mock-gpt", "succeeded")]);
        experiment["winner"]!.GetValue<string>().Should().NotBeNullOrEmpty();
        experiment["curation"]!["test"]!.GetValue<int>().Should().Be(60);

        var report = (await http.GetFromJsonAsync<JsonObject>($"api/experiments/{id}/report.json", ct))!;
        var knn = report["candidates"]!.AsArray().Single(c => c!["name"]!.GetValue<string>() == "knn")!;
        // Two balanced labels: chance is 50%; the nearest labelled emails do much better.
        knn["accuracy"]!.GetValue<double>().Should().BeGreaterThan(0.7);
        knn["items"]!.GetValue<int>().Should().Be(60);
        var prompted = report["candidates"]!.AsArray().Single(c => c!["name"]!.GetValue<string>() == "prompted:mock-gpt")!;
        prompted["costPer1k"]!.GetValue<double>().Should().BeGreaterThan(0);
        (await http.GetStringAsync($"api/experiments/{id}/report", ct)).Should().Contain("<svg").And.Contain("Decision");
    }

    [Fact]
    public async Task Experiment_WithAuthenticationOn_ServicesCallEachOtherWithTheServiceAccount()
    {
        var ct = TestContext.Current.CancellationToken;
        const string adminKey = "admin-key-for-the-test-0001";
        const string serviceKey = "service-account-key-0002";
        await using var model = await MockOpenAIServer.StartAsync(configure: o =>
        {
            o.Rules.Add(new MockRule { Pattern = @"Message:[\s\S]*\b(click|free|money|offer|unsubscribe|remove|order|\$)", Reply = "spam" });
            o.Fallback = "ham";
        }, ct: ct);
        var (app, http) = await StartEmbeddedAsync(TestSupport.TestInfrastructure.TempDataFolder("embedded-auth"),
            "--Authentication:ApiKeys:Accounts:0:Name=ops",
            $"--Authentication:ApiKeys:Accounts:0:KeyHash={ServiceDefaults.Security.ApiKeyAuthenticationHandler.Hash(adminKey)}",
            "--Authentication:ApiKeys:Accounts:0:Roles:0=admin",
            "--Authentication:ApiKeys:Accounts:1:Name=aspiretune-services",
            $"--Authentication:ApiKeys:Accounts:1:KeyHash={ServiceDefaults.Security.ApiKeyAuthenticationHandler.Hash(serviceKey)}",
            "--Authentication:ApiKeys:Accounts:1:Roles:0=admin",
            $"--Authentication:ServiceAccountKey={serviceKey}");
        await using var _ = app;
        (await http.GetAsync("api/experiments", ct)).StatusCode.Should().Be(HttpStatusCode.Unauthorized);
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", adminKey);

        (await http.PutAsJsonAsync("api/evaluation/models/mock-gpt", new { id = "mock-gpt", kind = "OpenAICompatible", baseUrl = model.BaseUrl, model = "mock-gpt" }, ct)).EnsureSuccessStatusCode();
        var response = await http.PostAsJsonAsync("api/experiments", new
        {
            name = "spam-auth",
            dataset = await File.ReadAllTextAsync(SamplePath, ct),
            candidates = new[] { "retrieval", "knn" },
            modelEndpoints = new[] { "mock-gpt" },
        }, ct);
        var id = (await response.Content.ReadFromJsonAsync<JsonObject>(ct))!["id"]!.GetValue<Guid>();

        var experiment = await WaitForExperimentAsync(http, id, TimeSpan.FromMinutes(3));

        experiment["status"]!.GetValue<string>().Should().Be("succeeded", experiment.ToJsonString());
        experiment["candidates"]!.AsArray().Should().OnlyContain(c => c!["status"]!.GetValue<string>() == "succeeded");
        var report = (await http.GetFromJsonAsync<JsonObject>($"api/experiments/{id}/report.json", ct))!;
        // Retrieval filled the prompts through an authenticated call: the few-shot candidate answered without errors.
        report["candidates"]!.AsArray().Single(c => c!["name"]!.GetValue<string>() == "retrieval:mock-gpt")!["errors"]!.GetValue<int>().Should().Be(0);
    }

    [Fact]
    public async Task RunningExperiment_MessageLostWithTheInMemoryQueues_IsDeliveredAgainAfterRestartAndHandledOnce()
    {
        var ct = TestContext.Current.CancellationToken;
        var data = TestSupport.TestInfrastructure.TempDataFolder("embedded-restart");
        Guid id;
        {
            var (app, http) = await StartEmbeddedAsync(data);
            await using var _ = app;
            var response = await http.PostAsJsonAsync("api/experiments", new { name = "restart", dataset = await File.ReadAllTextAsync(SamplePath, ct), candidates = new[] { "knn" } }, ct);
            id = (await response.Content.ReadFromJsonAsync<JsonObject>(ct))!["id"]!.GetValue<Guid>();
            (await WaitForExperimentAsync(http, id, TimeSpan.FromMinutes(6)))["status"]!.GetValue<string>().Should().Be("succeeded");
        }
        // Rewind to the moment the process died with CollectionIndexed still in an in-memory queue: the experiment
        // waits on it and Comparison's inbox has no record of it (Retrieval's outbox says it was delivered).
        await using (var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(data, "comparisondb.db")}"))
        {
            await connection.OpenAsync(ct);
            await using var command = connection.CreateCommand();
            command.CommandText = $"""
                UPDATE experiments SET "Status" = 'Running', "Step" = 'candidates', "Winner" = NULL, "Decision" = NULL, "CompletedAt" = NULL, "ReportHtmlArtifactJson" = NULL WHERE "Id" = '{id.ToString().ToUpperInvariant()}';
                UPDATE candidates SET "Status" = 'Pending', "OutcomesJson" = NULL;
                DELETE FROM processed_messages WHERE "Consumer" = 'ExperimentCollectionIndexedConsumer';
                """;
            (await command.ExecuteNonQueryAsync(ct)).Should().Be(3);
        }
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();

        var (restarted, client) = await StartEmbeddedAsync(data);
        await using var __ = restarted;
        var experiment = await WaitForExperimentAsync(client, id, TimeSpan.FromMinutes(6));

        experiment["status"]!.GetValue<string>().Should().Be("succeeded", experiment.ToJsonString());
        experiment["candidates"]!.AsArray().Single()!["status"]!.GetValue<string>().Should().Be("succeeded");
        experiment["reportUrl"]!.GetValue<string>().Should().NotBeNull();
        // Everything delivered before the restart went out again; what had been handled was dropped by the inboxes.
        await using (var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(data, "comparisondb.db")}"))
        {
            await connection.OpenAsync(ct);
            await using var command = connection.CreateCommand();
            command.CommandText = """SELECT COUNT(*) FROM experiment_log WHERE "Message" LIKE 'Curated %'""";
            ((long)(await command.ExecuteScalarAsync(ct))!).Should().Be(1, "StartExperiment, delivered again, was handled once");
        }
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
    }
}

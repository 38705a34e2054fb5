using AspireTune.ServiceDefaults.Data;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using AspireTune.Contracts.Evaluation;
using AspireTune.Evaluation.Data;
using AspireTune.MockOpenAI;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.Evaluation.Tests;

public class ResilienceAndSecretTests
{
    [Fact]
    public async Task Run_HostRestartsMidRun_ResumesWithoutResendingStoredItems()
    {
        await using var mock = await MockOpenAIServer.StartAsync(configure: o => o.LatencyMs = 150);
        var settings = new Dictionary<string, string?> { ["Evaluation:ResponseCache"] = "false", ["Evaluation:ResultBatchSize"] = "1" };
        // 80 items at 150 ms, two at a time: about 6 s of calls, so a host that is slow to stop on a loaded machine
        // still stops mid-run (with 24 items the whole run could finish before the host had stopped).
        var inputs = Enumerable.Range(0, 80).Select(i => $"item {i}").ToList();
        Guid runId;
        string dataFolder;
        await using (var first = EvaluationHost.Start(settings: settings))
        {
            dataFolder = first.DataFolder;
            await first.AddEndpointAsync("m", mock.BaseUrl, "m", maxConcurrency: 2);
            await first.AddPromptAsync("echo", "{{$input}}");
            var dataset = await first.UploadDatasetAsync("items", EvaluationHost.Jsonl(inputs.Select(i => new { input = i, expected = i })));
            runId = (await first.StartRunAsync(new { prompts = new[] { "echo" }, modelEndpoints = new[] { "m" }, dataset = dataset.Sha256 })).Id;
            while ((await first.GetRunAsync(runId)).CompletedCalls < 4)
                await Task.Delay(20);
        } // the host stops mid-run, as in a deployment or a crash after the last commit

        List<int> storedBeforeRestart;
        await using (var db = new EvaluationDbContext(new DbContextOptionsBuilder<EvaluationDbContext>().UseServiceSqlite($"Data Source={Path.Combine(dataFolder, "evaluationdb.db")}").Options))
        {
            (await db.Runs.SingleAsync(r => r.Id == runId)).Status.Should().Be(RunStatus.Running);
            storedBeforeRestart = await db.ItemResults.Where(r => r.RunId == runId).Select(r => r.Item).ToListAsync();
        }
        storedBeforeRestart.Count.Should().BeInRange(4, inputs.Count - 1);

        await using var second = EvaluationHost.Start(dataFolder, settings);
        var run = await second.WaitForRunAsync(runId);

        run.Status.Should().Be(RunStatus.Completed);
        run.Summaries!.Single().Items.Should().Be(inputs.Count);
        run.Summaries!.Single().Metrics.Single(m => m.Name == "exact").Value.Should().Be(1);
        foreach (var item in storedBeforeRestart)
            mock.State.RequestsFor("m", inputs[item]).Should().Be(1, $"item {item} was stored before the restart");
        await second.WaitForPublishedAsync<EvaluationCompleted>(e => e.RunId == runId);
        second.Published<EvaluationCompleted>().Should().ContainSingle(e => e.RunId == runId);
    }

    [Fact]
    public async Task Keys_UsedAndRejected_NeverAppearInLogsResponsesOrEvents()
    {
        const string goodKey = "sk-test-GOODSECRET-4f1e2d3c";
        const string wrongKey = "sk-test-WRONGSECRET-99aa88bb";
        await using var mock = await MockOpenAIServer.StartAsync(configure: o =>
        {
            o.ApiKey = goodKey;
            o.Fallback = "answer";
        });
        await using var host = EvaluationHost.Start(settings: new Dictionary<string, string?>
        {
            ["Evaluation:Secrets:mock"] = goodKey,
            ["Evaluation:Secrets:stale"] = wrongKey,
            ["Logging:LogLevel:Default"] = "Trace",
        });
        var keyed = await host.AddEndpointAsync("keyed", mock.BaseUrl, "m", apiKeySecret: "Evaluation:Secrets:mock");
        await host.AddEndpointAsync("stale", mock.BaseUrl, "m2", apiKeySecret: "Evaluation:Secrets:stale");
        keyed.ApiKeyConfigured.Should().BeTrue();
        await host.AddPromptAsync("q", "{{$input}}");
        var dataset = await host.UploadDatasetAsync("d", EvaluationHost.Jsonl([new { input = "x", expected = "answer" }, new { input = "y", expected = "answer" }]));

        var run = await host.WaitForRunAsync((await host.StartRunAsync(new { prompts = new[] { "q" }, modelEndpoints = new[] { "keyed", "stale" }, dataset = dataset.Sha256 })).Id);

        run.Status.Should().Be(RunStatus.Completed);
        var byEndpoint = run.Summaries!.ToDictionary(s => s.ModelEndpoint);
        byEndpoint["keyed"].Errors.Should().Be(0);
        byEndpoint["stale"].Errors.Should().Be(2);
        var results = await host.ResultsAsync(run.Id);
        results.First(r => r.GetProperty("modelEndpoint").GetString() == "stale").GetProperty("error").GetString()
            .Should().Contain("rejected the API key (HTTP 401)");
        mock.State.Answered(401).Should().Be(2, "401 is not retried");

        var seen = new List<string>(host.Logs.Lines)
        {
            await host.Client.GetStringAsync("/api/evaluation/models"),
            await host.Client.GetStringAsync("/api/evaluation/models/keyed"),
            await host.Client.GetStringAsync($"/api/evaluation/runs/{run.Id}"),
            await host.Client.GetStringAsync($"/api/evaluation/runs/{run.Id}/results"),
            await host.Client.GetStringAsync("/api/evaluation/runs"),
        };
        seen.AddRange(host.Published<EvaluationCompleted>().Select(e => JsonSerializer.Serialize(e)));
        seen.AddRange(host.Published<EvaluationFailed>().Select(e => JsonSerializer.Serialize(e)));
        seen.Should().Contain(s => s.Contains("Evaluation:Secrets:mock"), "the reference is shown");
        seen.Should().HaveCountGreaterThan(20, "logs were captured");
        seen.Should().NotContain(s => s.Contains(goodKey) || s.Contains(wrongKey) || s.Contains("GOODSECRET") || s.Contains("WRONGSECRET"));
    }

    [Fact]
    public async Task CreateEndpoint_RawKeyInBody_Returns400TellingToUseConfiguration()
    {
        await using var host = EvaluationHost.Start();
        const string key = "sk-live-RAWKEY-0123456789";

        var response = await host.Client.PostAsJsonAsync("/api/evaluation/models", new { id = "x", kind = "OpenAI", model = "gpt-4o-mini", apiKey = key });
        var asSecret = await host.Client.PostAsJsonAsync("/api/evaluation/models", new { id = "y", kind = "OpenAI", model = "gpt-4o-mini", apiKeySecret = key });

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        var body = await response.Content.ReadAsStringAsync();
        body.Should().Contain("configuration").And.Contain("apiKeySecret").And.NotContain(key);
        response.Content.Headers.ContentType!.MediaType.Should().Be("application/problem+json");
        asSecret.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await asSecret.Content.ReadAsStringAsync()).Should().Contain("NAME of a configuration key").And.NotContain(key);
        (await host.Client.GetStringAsync("/api/evaluation/models")).Should().Be("[]");
        host.Logs.Lines.Should().NotContain(l => l.Contains(key));
    }
}

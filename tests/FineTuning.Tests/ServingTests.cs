using System.Net.Http.Json;
using System.Text.Json;
using AspireTune.FineTuning.Data;
using AspireTune.FineTuning.Serving;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace AspireTune.FineTuning.Tests;

/// <summary>Continuous batching behind <c>/v1</c>: concurrent requests to one model are decoded together.</summary>
[Collection(TrainingCollection.Name)]
public sealed class ServingTests : IAsyncLifetime
{
    // Context 2,048 so that a request can run long enough to be cut off by its client.
    private readonly FineTuningFactory _factory = new(new Dictionary<string, string?> { ["FineTuning:BuiltIn:Context"] = "2048" });
    private HttpClient _http = null!;

    public ValueTask InitializeAsync()
    {
        _http = _factory.CreateClient();
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync() => await _factory.DisposeAsync();

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private async Task<JsonElement> CompleteAsync(string prompt, int maxTokens)
    {
        using var response = await _http.PostAsJsonAsync("/v1/completions", new { model = "aspiretune-tiny", prompt, max_tokens = maxTokens, temperature = 0 }, Ct);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(Ct);
        response.IsSuccessStatusCode.Should().BeTrue(body.ToString());
        return body.GetProperty("choices")[0];
    }

    private async Task<BatchStats> StatsAsync()
    {
        using var scope = _factory.Services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
        var model = await db.Models.AsNoTracking().FirstAsync(m => m.Id == "aspiretune-tiny", Ct);
        using var lease = await _factory.Services.GetRequiredService<ModelHost>().AcquireAsync(model, Ct);
        var g = lease.Generator;
        return new BatchStats(g.PeakBatch, g.DecodeSteps, g.FreeTokens, g.CapacityTokens);
    }

    private sealed record BatchStats(int PeakBatch, long DecodeSteps, int FreeTokens, int CapacityTokens);

    [Fact]
    public async Task Completions_EightConcurrentGreedyRequests_AnswerAsEachDoesAlone()
    {
        var prompts = Enumerable.Range(0, 8).Select(i => $"Review {i}: the {new string('x', i * 3)} was").ToList();
        var maxTokens = prompts.Select((_, i) => 10 + 4 * i).ToList();
        var alone = new List<JsonElement>();
        foreach (var (p, i) in prompts.Select((p, i) => (p, i)))
            alone.Add(await CompleteAsync(p, maxTokens[i]));
        (await StatsAsync()).PeakBatch.Should().Be(1, "requests sent one after another decode alone");

        var together = await Task.WhenAll(prompts.Select((p, i) => CompleteAsync(p, maxTokens[i])));

        (await StatsAsync()).PeakBatch.Should().BeGreaterThan(1, "concurrent requests share decode steps");
        for (var i = 0; i < prompts.Count; i++)
        {
            together[i].GetProperty("text").GetString().Should().Be(alone[i].GetProperty("text").GetString());
            together[i].GetProperty("token_ids").EnumerateArray().Select(t => t.GetInt32())
                .Should().Equal(alone[i].GetProperty("token_ids").EnumerateArray().Select(t => t.GetInt32()));
            together[i].GetProperty("finish_reason").GetString().Should().Be(alone[i].GetProperty("finish_reason").GetString());
        }
    }

    [Fact]
    public async Task Completions_StreamingClientDisconnects_GenerationStopsAndFreesTheCache()
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = JsonContent.Create(new { model = "aspiretune-tiny", prompt = "Once", max_tokens = 2000, temperature = 0, stream = true,
                // End-of-text banned: only max_tokens or the client can end this one.
                logit_bias = new Dictionary<string, int> { ["256"] = -100 } }),
        };
        var before = (await StatsAsync()).DecodeSteps;
        using (var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token))
        {
            var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cts.Token));
            (await reader.ReadLineAsync(cts.Token)).Should().StartWith("data: ");
            await cts.CancelAsync();
        }

        var stats = await StatsAsync();
        for (var i = 0; i < 100 && stats.FreeTokens < stats.CapacityTokens; i++)
        {
            await Task.Delay(50, Ct);
            stats = await StatsAsync();
        }
        stats.FreeTokens.Should().Be(stats.CapacityTokens, "the abandoned request's cache blocks are returned");
        (stats.DecodeSteps - before).Should().BeLessThan(1999, "decoding stops when the client goes away, not after max_tokens");
        var next = await CompleteAsync("Twice", 5);
        next.GetProperty("token_ids").GetArrayLength().Should().BeGreaterThan(0);
    }
}

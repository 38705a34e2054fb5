using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using AspireTune.Comparison.Analysis;
using AspireTune.Contracts.Common;
using AspireTune.ServiceDefaults.Artifacts;
using AspireTune.ServiceDefaults.Security;
using Microsoft.Extensions.Options;

namespace AspireTune.Comparison.Workflow;

/// <summary>The Evaluation service's HTTP API, for the set-up that precedes a run: prompt versions and endpoints.</summary>
public sealed partial class EvaluationSetupClient
{
    private readonly HttpClient _http;
    private readonly ComparisonOptions _options;

    public EvaluationSetupClient(HttpClient http, IOptions<ComparisonOptions> options)
    {
        _options = options.Value;
        http.BaseAddress = new Uri(_options.EvaluationBaseUrl.TrimEnd('/') + "/");
        _http = http;
    }

    /// <summary>Returns <c>name@version</c> of a version holding this template, creating one only when none does.</summary>
    public async Task<string> EnsurePromptAsync(string name, string template, CancellationToken ct)
    {
        using var existing = await _http.GetAsync($"api/evaluation/prompts/{Uri.EscapeDataString(name)}", ct);
        if (existing.IsSuccessStatusCode && await existing.Content.ReadFromJsonAsync<JsonArray>(ct) is { } versions)
            foreach (var v in versions)
                if (v?["template"]?.GetValue<string>() == template)
                    return $"{name}@{v["version"]!.GetValue<int>()}";
        using var created = await _http.PostAsJsonAsync("api/evaluation/prompts", new { name, template }, ct);
        await EnsureSuccessAsync(created, "create a prompt version", ct);
        var body = await created.Content.ReadFromJsonAsync<JsonObject>(ct);
        return $"{name}@{body!["version"]!.GetValue<int>()}";
    }

    /// <summary>The base model as served by AspireTune's own <c>/v1</c>, registered as an endpoint (free: it runs here).</summary>
    public Task<string> EnsureLocalEndpointAsync(string model, CancellationToken ct) =>
        EnsureServedEndpointAsync(model, _options.FineTuningBaseUrl.TrimEnd('/') + "/v1", ct);

    /// <summary>Registers (or updates) an OpenAI-compatible endpoint for a served model; returns its endpoint id.</summary>
    public async Task<string> EnsureServedEndpointAsync(string model, string baseUrl, CancellationToken ct)
    {
        var name = InvalidIdChars().Replace(model, "-").Trim('-');
        // Ids are at most 128 characters; a long name keeps its end, where a fine-tuned model's unique job id is.
        var id = "aspiretune-" + (name.Length > 117 ? name[^117..].TrimStart('-', '.', '_') : name);
        using var response = await _http.PutAsJsonAsync($"api/evaluation/models/{id}", new
        {
            id,
            kind = "OpenAICompatible",
            baseUrl,
            model,
            // Evaluation resolves this name in its own configuration: the service account key every service shares.
            apiKeySecret = ServiceAccountHandler.ConfigurationKey,
            inputPricePerMillion = 0.0,
            outputPricePerMillion = 0.0,
            maxConcurrency = 4,
        }, ct);
        await EnsureSuccessAsync(response, $"register endpoint '{id}'", ct);
        return id;
    }

    internal static async Task EnsureSuccessAsync(HttpResponseMessage response, string what, CancellationToken ct)
    {
        if (response.IsSuccessStatusCode)
            return;
        var detail = await response.Content.ReadAsStringAsync(ct);
        throw new HttpRequestException($"Could not {what}: {(int)response.StatusCode} {detail[..Math.Min(detail.Length, 500)]}", null, response.StatusCode);
    }

    [GeneratedRegex("[^A-Za-z0-9._-]+")]
    private static partial Regex InvalidIdChars();
}

/// <summary>The Retrieval service's kNN classifier, the non-LLM baseline of every comparison.</summary>
public sealed class KnnBaselineClient
{
    private readonly HttpClient _http;

    public KnnBaselineClient(HttpClient http, IOptions<ComparisonOptions> options)
    {
        http.BaseAddress = new Uri(options.Value.RetrievalBaseUrl.TrimEnd('/') + "/");
        _http = http;
    }

    /// <summary>The label the k nearest labelled examples vote for, and how long the call took (seconds).</summary>
    public async Task<(string? Label, double Seconds)> ClassifyAsync(string collection, string text, int k, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        using var response = await _http.PostAsJsonAsync($"api/retrieval/collections/{Uri.EscapeDataString(collection)}/classify", new { text, k }, ct);
        await EvaluationSetupClient.EnsureSuccessAsync(response, $"classify with collection '{collection}'", ct);
        var body = await response.Content.ReadFromJsonAsync<JsonObject>(ct);
        return (body?["label"]?.GetValue<string>(), Stopwatch.GetElapsedTime(started).TotalSeconds);
    }
}

/// <summary>Reads the Evaluation service's per-item results (JSONL) into outcomes keyed like the test split.</summary>
public static class EvaluationResults
{
    public static async Task<List<ItemOutcome>> ReadOutcomesAsync(IArtifactStore artifacts, ArtifactRef results, IReadOnlyList<string> itemIds, CancellationToken ct)
    {
        var text = System.Text.Encoding.UTF8.GetString(await artifacts.ReadVerifiedAsync(results, ct));
        var outcomes = new List<ItemOutcome>();
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var r = JsonNode.Parse(line)!.AsObject();
            if (r["repeat"]?.GetValue<int>() is > 0)
                continue; // the comparison scores the first answer; repeats measure consistency in the Evaluation report
            var index = r["item"]!.GetValue<int>();
            var error = r["error"]?.GetValue<string>();
            var predicted = r["predicted"]?.GetValue<string>();
            // The label scorer reads an answer that names no label as "(other)": invalid, and kept as written.
            var invalid = error is null && predicted == "(other)";
            outcomes.Add(new ItemOutcome(
                index < itemIds.Count ? itemIds[index] : $"item-{index}",
                error is null && Correct(r["scores"]),
                r["latencyS"]?.GetValue<double>() ?? double.NaN,
                r["costUsd"]?.GetValue<double>() ?? 0,
                invalid ? r["output"]?.GetValue<string>() : predicted ?? r["output"]?.GetValue<string>(),
                error,
                invalid,
                r["examplesShown"]?.GetValue<int>(),
                r["examplesRetrieved"]?.GetValue<int>(),
                r["inputTruncated"]?.GetValue<bool>() ?? false));
        }
        return outcomes;
    }

    /// <summary>An item counts as right when its primary score (label, else exact, else the first) is 1.</summary>
    private static bool Correct(JsonNode? scores)
    {
        if (scores is not JsonObject obj || obj.Count == 0)
            return false;
        var primary = obj["label"] ?? obj["exact"] ?? obj.First().Value;
        return primary?.GetValueKind() switch
        {
            JsonValueKind.Number => primary.GetValue<double>() >= 0.999,
            JsonValueKind.True => true,
            _ => false,
        };
    }
}

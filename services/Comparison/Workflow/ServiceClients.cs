using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.RegularExpressions;
using AspireTune.Comparison.Analysis;
using AspireTune.Contracts.Common;
using AspireTune.Contracts.Evaluation;
using AspireTune.Contracts.Retrieval;
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
        if (existing.IsSuccessStatusCode && await existing.Content.ReadFromJsonAsync<List<PromptVersionResponse>>(ContractJson.Options, ct) is { } versions
            && versions.FirstOrDefault(v => v.Template == template) is { } same)
            return same.Ref;
        using var created = await _http.PostAsJsonAsync("api/evaluation/prompts", new PromptVersionRequest { Name = name, Template = template }, ContractJson.Options, ct);
        await EnsureSuccessAsync(created, "create a prompt version", ct);
        return (await created.Content.ReadFromJsonAsync<PromptVersionResponse>(ContractJson.Options, ct))!.Ref;
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
        using var response = await _http.PutAsJsonAsync($"api/evaluation/models/{id}", new ModelEndpointRequest
        {
            Id = id,
            Kind = EndpointKind.OpenAICompatible,
            BaseUrl = baseUrl,
            Model = model,
            // Evaluation resolves this name in its own configuration: the service account key every service shares.
            ApiKeySecret = ServiceAccountHandler.ConfigurationKey,
            InputPricePerMillion = 0,
            OutputPricePerMillion = 0,
            MaxConcurrency = 4,
        }, ContractJson.Options, ct);
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

/// <summary>
/// The Retrieval service's nearest neighbours as the non-LLM baseline of every comparison: the k nearest labelled
/// examples' vote (classification), or the nearest example's reference answer (generation).
/// </summary>
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
        using var response = await _http.PostAsJsonAsync($"api/retrieval/collections/{Uri.EscapeDataString(collection)}/classify",
            new ClassifyRequest { Text = text, K = k }, ContractJson.Options, ct);
        await EvaluationSetupClient.EnsureSuccessAsync(response, $"classify with collection '{collection}'", ct);
        var body = await response.Content.ReadFromJsonAsync<ClassifyResponse>(ContractJson.Options, ct);
        return (body?.Label, Stopwatch.GetElapsedTime(started).TotalSeconds);
    }

    /// <summary>The reference answer of the training example nearest the text (null when the collection has none), and how long the call took (seconds).</summary>
    public async Task<(string? Reference, double Seconds)> NearestReferenceAsync(string collection, string text, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        using var response = await _http.PostAsJsonAsync($"api/retrieval/collections/{Uri.EscapeDataString(collection)}/neighbors",
            new NeighborsRequest { Text = text, K = 1 }, ContractJson.Options, ct);
        await EvaluationSetupClient.EnsureSuccessAsync(response, $"find the nearest example in collection '{collection}'", ct);
        var body = await response.Content.ReadFromJsonAsync<NeighborsResponse>(ContractJson.Options, ct);
        return (body?.Neighbors.FirstOrDefault(n => n.Label is not null)?.Label, Stopwatch.GetElapsedTime(started).TotalSeconds);
    }
}

/// <summary>Reads the Evaluation service's per-item results into outcomes keyed like the test split.</summary>
public static class EvaluationResults
{
    public static async Task<List<ItemOutcome>> ReadOutcomesAsync(IArtifactStore artifacts, ArtifactRef results, IReadOnlyList<string> itemIds, string primary, CancellationToken ct) =>
        ToOutcomes(EvaluationResultsJsonl.Read(await artifacts.ReadVerifiedAsync(results, ct)), itemIds, primary);

    /// <summary>
    /// <paramref name="primary"/>: the per-item score the comparison ranks by (<c>label</c> for classification). For
    /// another score (generation) each outcome keeps it as its graded score, and every score of the item with it.
    /// </summary>
    public static List<ItemOutcome> ToOutcomes(IEnumerable<EvaluationItemResult> results, IReadOnlyList<string> itemIds, string primary = "label") =>
        results
            .Where(r => r.Repeat == 0) // the comparison scores the first answer; repeats measure consistency in the Evaluation report
            .Select(r => new ItemOutcome(
                r.Item < itemIds.Count ? itemIds[r.Item] : $"item-{r.Item}",
                r.Error is null && Primary(r.Scores, primary) >= 0.999,
                r.LatencyS,
                r.CostUsd,
                // An answer the label scorer could read as no label is invalid, and kept as written.
                Invalid(r) ? r.Output : r.Predicted ?? r.Output,
                r.Error,
                Invalid(r),
                r.ExamplesShown,
                r.ExamplesRetrieved,
                r.InputTruncated,
                r.Scores?.TryGetValue("label_likelihood", out var likely) == true ? likely >= 0.999 : null)
            {
                // A failed call scores 0 on every metric, as it counts as a wrong answer in classification.
                Score = primary == "label" ? null : r.Error is null ? Primary(r.Scores, primary) : 0,
                Scores = primary == "label" ? null : r.Error is null ? r.Scores : r.Scores?.ToDictionary(kv => kv.Key, _ => 0.0),
            })
            .ToList();

    private static bool Invalid(EvaluationItemResult r) => r.Error is null && r.Predicted == EvaluationItemResult.NoLabel;

    /// <summary>The item's primary score (label, else exact, else the first for classification); 0 when it has none.</summary>
    private static double Primary(IReadOnlyDictionary<string, double>? scores, string primary)
    {
        if (scores is null || scores.Count == 0)
            return 0;
        if (primary != "label")
            return scores.TryGetValue(primary, out var graded) ? graded : 0;
        return scores.TryGetValue("label", out var label) ? label : scores.TryGetValue("exact", out var exact) ? exact : scores.First().Value;
    }
}

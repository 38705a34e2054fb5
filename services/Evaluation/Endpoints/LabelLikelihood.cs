using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using AspireTune.Evaluation.Data;

namespace AspireTune.Evaluation.Endpoints;

/// <summary>
/// Classification scored as lm-evaluation-harness scores multiple choice: each label is appended to the prompt (as
/// the model sees it, chat template included) and the label whose tokens have the highest log-likelihood per byte
/// wins (its <c>acc_norm</c>). Needs an endpoint that tokenizes (<c>POST {baseUrl}/tokenize</c>) and scores echoed
/// prompts (<c>/completions</c> with <c>echo</c>, <c>logprobs</c>, <c>max_tokens: 0</c>): AspireTune's own <c>/v1</c>,
/// and servers of the same shape. Labels end with the end-of-text token where the model has one, so a label that is
/// the start of another (<c>Democratic</c>, <c>Democratic-Republican</c>) is not favoured for being shorter.
/// </summary>
public sealed class LabelLikelihood(IHttpClientFactory httpClients, ModelGateway gateway, TokenCounter tokens)
{
    /// <summary>Tokens a label may take at most beyond the prompt: its UTF-8 bytes (a byte-level tokenizer's worst case) and the end token.</summary>
    public static int Reserve(IEnumerable<string> labels) => labels.Select(l => Encoding.UTF8.GetByteCount(l) + 1).DefaultIfEmpty(0).Max();

    /// <summary>The most likely label, or null when the endpoint cannot score (no tokenizer route).</summary>
    public async Task<string?> ChooseAsync(ModelEndpointEntity endpoint, string? system, string user, IReadOnlyList<string> labels, CancellationToken ct)
    {
        if (labels.Count == 0 || !(await tokens.WindowAsync(endpoint, ct)).Exact)
            return null;
        var (context, eos) = await tokens.TokenIdsAsync(endpoint, system, user, null, ct);
        var continuations = new List<List<int>>();
        foreach (var label in labels)
        {
            var (ids, _) = await tokens.TokenIdsAsync(endpoint, null, null, label, ct);
            continuations.Add([.. ids, .. eos is { } e ? new[] { e } : []]);
        }
        var body = new ScoringRequest { Model = endpoint.Model, Prompt = [.. continuations.Select(c => context.Concat(c).ToList())] };
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(new Uri(ModelGateway.BaseUrl(endpoint)), "completions")) { Content = JsonContent.Create(body, options: Json) };
        if (gateway.ResolveKey(endpoint) is { Length: > 0 } key)
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        ScoringResponse? answer;
        try
        {
            using var response = await httpClients.CreateClient(ModelGateway.ClientName).SendAsync(request, ct);
            if (!response.IsSuccessStatusCode)
                throw new ModelCallException($"Endpoint '{endpoint.Id}' could not score the labels (HTTP {(int)response.StatusCode}).");
            answer = await response.Content.ReadFromJsonAsync<ScoringResponse>(Json, ct);
        }
        catch (Exception e) when (e is HttpRequestException or JsonException or Polly.Timeout.TimeoutRejectedException or Polly.CircuitBreaker.BrokenCircuitException && !ct.IsCancellationRequested)
        {
            throw new ModelCallException($"Endpoint '{endpoint.Id}' could not score the labels: {e.Message}", e);
        }
        var choices = answer?.Choices ?? throw new ModelCallException($"Endpoint '{endpoint.Id}' answered the scoring call without choices.");
        string? best = null;
        var bestScore = double.NegativeInfinity;
        for (var i = 0; i < labels.Count && i < choices.Count; i++)
        {
            var logprobs = choices[i]?.Logprobs?.TokenLogprobs;
            if (logprobs is null || logprobs.Count < continuations[i].Count)
                throw new ModelCallException($"Endpoint '{endpoint.Id}' returned no log-probabilities for the echoed prompt.");
            var sum = logprobs.Skip(logprobs.Count - continuations[i].Count).Sum(l => l ?? 0);
            var score = sum / Math.Max(1, Encoding.UTF8.GetByteCount(labels[i]));
            if (score > bestScore)
                (best, bestScore) = (labels[i], score);
        }
        return best;
    }

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>The OpenAI completions call that scores echoed prompts: no new tokens, the prompt's own log-probabilities.</summary>
    private sealed record ScoringRequest
    {
        public required string Model { get; init; }
        public required IReadOnlyList<IReadOnlyList<int>> Prompt { get; init; }
        public bool Echo => true;
        public int Logprobs => 0;
        public int MaxTokens => 0;
    }

    private sealed record ScoringResponse(IReadOnlyList<ScoringChoice?>? Choices);

    private sealed record ScoringChoice(ScoringLogprobs? Logprobs);

    /// <summary>One log-probability per token; the first token of a prompt has none (null).</summary>
    private sealed record ScoringLogprobs(IReadOnlyList<double?>? TokenLogprobs);
}

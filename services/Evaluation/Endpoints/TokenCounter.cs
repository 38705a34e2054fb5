using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using AspireTune.Contracts.Evaluation;
using AspireTune.Evaluation.Data;

namespace AspireTune.Evaluation.Endpoints;

/// <summary>How many tokens an endpoint's model takes, and whether prompts are counted with its own tokenizer.</summary>
public sealed record ContextWindow(int ContextLength, bool Exact)
{
    /// <summary>What the counts rest on, for reports.</summary>
    public string Basis => Exact ? "the served model's tokenizer" : $"an estimate of one token per {TokenCounter.EstimatedBytesPerToken} UTF-8 bytes";
}

/// <summary>
/// Counts the tokens of a chat prompt for an endpoint. Where the endpoint serves <c>POST {baseUrl}/tokenize</c>
/// (AspireTune's own <c>/v1</c>, in the shape of vLLM's route) the count is exact and the context length is the
/// model's; elsewhere (hosted models) the count is a stated estimate, one token per three UTF-8 bytes plus four per
/// message (English runs near four bytes a token with the GPT tokenizers), and the context length is the one the
/// endpoint was registered with, else a known default for the model family, else 8,192.
/// </summary>
public sealed class TokenCounter(IHttpClientFactory httpClients, ModelGateway gateway)
{
    public const int EstimatedBytesPerToken = 3;
    public const int DefaultContextLength = 8192;

    private readonly ConcurrentDictionary<string, ContextWindow> _windows = new(StringComparer.Ordinal);

    /// <summary>Context lengths of hosted model families (tokens), longest prefix first.</summary>
    private static readonly (string Prefix, int Tokens)[] KnownContexts =
    [
        ("gpt-4.1", 1_047_576), ("gpt-4o", 128_000), ("gpt-4-turbo", 128_000), ("gpt-4", 8_192), ("gpt-3.5-turbo", 16_385),
        ("o1", 200_000), ("o3", 200_000), ("o4", 200_000),
    ];

    public static int? KnownContextLength(string model) =>
        KnownContexts.FirstOrDefault(k => model.StartsWith(k.Prefix, StringComparison.OrdinalIgnoreCase)) is { Prefix: not null } k ? k.Tokens : null;

    /// <summary>The endpoint's window; asks the endpoint's tokenize route once per endpoint version.</summary>
    public async Task<ContextWindow> WindowAsync(ModelEndpointEntity endpoint, CancellationToken ct)
    {
        var key = $"{endpoint.Id}|{endpoint.UpdatedAt.UtcTicks}";
        if (_windows.TryGetValue(key, out var known))
            return known;
        var estimate = new ContextWindow(endpoint.ContextLength ?? KnownContextLength(endpoint.Model) ?? DefaultContextLength, false);
        if (endpoint.Kind != EndpointKind.OpenAICompatible)
            return _windows[key] = estimate;
        try
        {
            var probe = await TokenizeAsync(endpoint, new TokenizeRequest { Model = endpoint.Model, Prompt = "" }, ct);
            return _windows[key] = probe is { MaxModelLen: > 0 }
                ? new ContextWindow(Math.Min(endpoint.ContextLength ?? int.MaxValue, probe.MaxModelLen.Value), true)
                : estimate;
        }
        catch (Exception e) when (IsTransport(e))
        {
            return estimate; // not remembered: the endpoint may be starting; its calls will say what is wrong
        }
    }

    /// <summary>Tokens of the chat prompt (system and user message) under the window's counting.</summary>
    public async Task<int> CountAsync(ModelEndpointEntity endpoint, ContextWindow window, string? system, string user, CancellationToken ct)
    {
        if (!window.Exact)
            return Estimate(system, user);
        List<TokenizeMessage> messages = string.IsNullOrEmpty(system) ? [] : [new TokenizeMessage("system", system)];
        messages.Add(new TokenizeMessage("user", user));
        try
        {
            var answer = await TokenizeAsync(endpoint, new TokenizeRequest { Model = endpoint.Model, Messages = messages }, ct)
                ?? throw new ModelCallException($"Endpoint '{endpoint.Id}' stopped answering its tokenize route.");
            return answer.Count;
        }
        catch (Exception e) when (IsTransport(e) && !ct.IsCancellationRequested)
        {
            throw new ModelCallException($"Endpoint '{endpoint.Id}' could not count the prompt's tokens: {e.Message}", e);
        }
    }

    private static bool IsTransport(Exception e) =>
        e is HttpRequestException or Polly.Timeout.TimeoutRejectedException or Polly.CircuitBreaker.BrokenCircuitException;

    public static int Estimate(string? system, string user)
    {
        static int Tokens(string text) => (Encoding.UTF8.GetByteCount(text) + EstimatedBytesPerToken - 1) / EstimatedBytesPerToken + 4;
        return (string.IsNullOrEmpty(system) ? 0 : Tokens(system)) + Tokens(user) + 3;
    }

    /// <summary>Token ids of the chat prompt (<paramref name="text"/> null) or of a bare text (no special tokens), and the end-of-text id.</summary>
    public async Task<(IReadOnlyList<int> Ids, int? Eos)> TokenIdsAsync(ModelEndpointEntity endpoint, string? system, string? user, string? text, CancellationToken ct)
    {
        List<TokenizeMessage>? messages = null;
        if (text is null)
        {
            messages = string.IsNullOrEmpty(system) ? [] : [new TokenizeMessage("system", system)];
            messages.Add(new TokenizeMessage("user", user ?? ""));
        }
        try
        {
            var answer = await TokenizeAsync(endpoint, new TokenizeRequest { Model = endpoint.Model, Messages = messages, Prompt = text, AddSpecialTokens = text is null ? null : false }, ct);
            return answer?.Tokens is { } ids ? (ids, answer.EosTokenId) : throw new ModelCallException($"Endpoint '{endpoint.Id}' returned no token ids.");
        }
        catch (Exception e) when (IsTransport(e) && !ct.IsCancellationRequested)
        {
            throw new ModelCallException($"Endpoint '{endpoint.Id}' could not tokenize: {e.Message}", e);
        }
    }

    /// <summary>The endpoint's answer; null when it has no tokenize route (404, 405, 501).</summary>
    private async Task<TokenizeResponse?> TokenizeAsync(ModelEndpointEntity endpoint, TokenizeRequest request, CancellationToken ct)
    {
        var http = httpClients.CreateClient(ModelGateway.ClientName);
        using var message = new HttpRequestMessage(HttpMethod.Post, new Uri(new Uri(ModelGateway.BaseUrl(endpoint)), "tokenize"))
        {
            Content = JsonContent.Create(request, options: Json),
        };
        if (gateway.ResolveKey(endpoint) is { Length: > 0 } key)
            message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        using var response = await http.SendAsync(message, ct);
        if (response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.MethodNotAllowed or HttpStatusCode.NotImplemented)
            return null;
        if (!response.IsSuccessStatusCode)
            throw new ModelCallException($"Endpoint '{endpoint.Id}' could not count the prompt's tokens (HTTP {(int)response.StatusCode}).");
        try
        {
            return await response.Content.ReadFromJsonAsync<TokenizeResponse>(Json, ct);
        }
        catch (JsonException)
        {
            return null; // something answers at that path, but not a tokenizer
        }
    }

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private sealed record TokenizeMessage(string Role, string Content);

    private sealed record TokenizeRequest
    {
        public required string Model { get; init; }
        public string? Prompt { get; init; }
        public IReadOnlyList<TokenizeMessage>? Messages { get; init; }
        public bool? AddSpecialTokens { get; init; }
    }

    private sealed record TokenizeResponse(int Count, int? MaxModelLen, IReadOnlyList<int>? Tokens, int? EosTokenId);
}

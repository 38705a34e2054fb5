using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Threading.RateLimiting;
using AspireTune.Contracts.Evaluation;
using AspireTune.Evaluation.Data;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.ChatCompletion;
using Microsoft.SemanticKernel.Connectors.OpenAI;
using OpenAI.Chat;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace AspireTune.Evaluation.Endpoints;

/// <summary>A call failed in a way the user should read (never holds the key or the endpoint's body).</summary>
public sealed class ModelCallException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>One chat call: optional system message, the user message, sampling parameters.</summary>
public sealed record ModelCall(string? System, string User, double? Temperature, int? MaxTokens)
{
    /// <summary>The answer must be one of these strings (sent as <c>guided_choice</c>); null: free text.</summary>
    public IReadOnlyList<string>? Choices { get; init; }
}

/// <summary>The answer and what it cost.</summary>
public sealed record ModelAnswer(string Output, int InputTokens, int OutputTokens, double LatencyMs, bool Cached);

/// <summary>
/// Every model call goes through here: Semantic Kernel's OpenAI connector on a custom endpoint, over the
/// <see cref="ClientName"/> HTTP client (retry honouring Retry-After, circuit breaker per host, minute-scale
/// timeouts), bounded concurrency and requests per minute per endpoint, and the response cache.
/// </summary>
public sealed class ModelGateway(IHttpClientFactory httpClients, IConfiguration configuration, ResponseCache cache, IOptions<EvaluationOptions> options)
{
    public const string ClientName = "evaluation-models";

    private readonly ConcurrentDictionary<string, Connection> _connections = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Limits> _limits = new(StringComparer.Ordinal);

    /// <summary>The configuration value named by the endpoint's <c>ApiKeySecret</c>, read at call time.</summary>
    public string? ResolveKey(ModelEndpointEntity endpoint) => EndpointSecrets.Resolve(configuration, endpoint.ApiKeySecret);

    /// <summary>Calls the endpoint, or answers from the cache when the same call was answered before.</summary>
    public async Task<ModelAnswer> CompleteAsync(ModelEndpointEntity endpoint, ModelCall call, int variant, CancellationToken ct)
    {
        var useCache = options.Value.ResponseCache;
        var key = useCache ? CacheKey(endpoint, call, variant) : null;
        if (key is not null && await cache.GetAsync(key, ct) is { } hit)
        {
            EvaluationTelemetry.Calls.Add(1, new("endpoint", endpoint.Id), new("outcome", "cached"));
            return hit with { Cached = true };
        }

        var answer = await CallAsync(endpoint, call, ct);
        if (key is not null)
            cache.Add(key, answer);
        return answer;
    }

    private async Task<ModelAnswer> CallAsync(ModelEndpointEntity endpoint, ModelCall call, CancellationToken ct)
    {
        var limits = _limits.AddOrUpdate(endpoint.Id,
            _ => new Limits(endpoint.MaxConcurrency, endpoint.RequestsPerMinute),
            (_, existing) => existing.Matches(endpoint.MaxConcurrency, endpoint.RequestsPerMinute) ? existing : new Limits(endpoint.MaxConcurrency, endpoint.RequestsPerMinute));
        var service = Connect(endpoint);

        var history = new ChatHistory();
        if (!string.IsNullOrEmpty(call.System))
            history.AddSystemMessage(call.System);
        history.AddUserMessage(call.User);
        var settings = new OpenAIPromptExecutionSettings { Temperature = call.Temperature, MaxTokens = call.MaxTokens };

        await limits.Concurrency.WaitAsync(ct);
        try
        {
            if (limits.Rate is not null)
            {
                using var lease = await limits.Rate.AcquireAsync(1, ct);
                if (!lease.IsAcquired)
                    throw new ModelCallException($"The requests-per-minute queue of endpoint '{endpoint.Id}' is full.");
            }
            var start = Stopwatch.GetTimestamp();
            Microsoft.SemanticKernel.ChatMessageContent message;
            using (GuidedChoice.For(call.Choices))
                message = await service.GetChatMessageContentAsync(history, settings, kernel: null, ct);
            var latency = Stopwatch.GetElapsedTime(start);
            var usage = message.Metadata?.TryGetValue("Usage", out var u) == true ? u as ChatTokenUsage : null;
            var answer = new ModelAnswer(message.Content ?? "", usage?.InputTokenCount ?? 0, usage?.OutputTokenCount ?? 0, latency.TotalMilliseconds, false);
            Record(endpoint, answer);
            return answer;
        }
        catch (Exception e) when (Describe(e, endpoint) is { } reason && !ct.IsCancellationRequested)
        {
            EvaluationTelemetry.Calls.Add(1, new("endpoint", endpoint.Id), new("outcome", "error"));
            throw new ModelCallException(reason, e);
        }
        finally
        {
            limits.Concurrency.Release();
        }
    }

    /// <summary>Embeddings of the texts from the endpoint's <c>/v1/embeddings</c> (the <c>similar</c> assertion), within its concurrency.</summary>
    public async Task<IReadOnlyList<float[]>> EmbedAsync(ModelEndpointEntity endpoint, IReadOnlyList<string> texts, CancellationToken ct)
    {
        var limits = _limits.GetOrAdd(endpoint.Id, _ => new Limits(endpoint.MaxConcurrency, endpoint.RequestsPerMinute));
        var http = httpClients.CreateClient(ClientName);
        if (endpoint.Kind == EndpointKind.AzureOpenAI && ResolveKey(endpoint) is { } azureKey)
            http.DefaultRequestHeaders.Add("api-key", azureKey);
        var client = new OpenAI.Embeddings.EmbeddingClient(endpoint.Model, new System.ClientModel.ApiKeyCredential(ResolveKey(endpoint) is { Length: > 0 } key ? key : "none"),
            new OpenAI.OpenAIClientOptions { Endpoint = new Uri(BaseUrl(endpoint)), Transport = new System.ClientModel.Primitives.HttpClientPipelineTransport(http) });
        await limits.Concurrency.WaitAsync(ct);
        try
        {
            var result = await client.GenerateEmbeddingsAsync(texts, cancellationToken: ct);
            return result.Value.OrderBy(e => e.Index).Select(e => e.ToFloats().ToArray()).ToList();
        }
        catch (Exception e) when (e is System.ClientModel.ClientResultException or HttpRequestException or TimeoutRejectedException or BrokenCircuitException && !ct.IsCancellationRequested)
        {
            var status = e is System.ClientModel.ClientResultException { Status: > 0 } c ? $" (HTTP {c.Status})" : "";
            throw new ModelCallException($"Endpoint '{endpoint.Id}' could not embed the texts{status}.", e);
        }
        finally
        {
            limits.Concurrency.Release();
        }
    }

    private static void Record(ModelEndpointEntity endpoint, ModelAnswer answer)
    {
        var tag = new KeyValuePair<string, object?>("endpoint", endpoint.Id);
        EvaluationTelemetry.Calls.Add(1, tag, new("outcome", "ok"));
        EvaluationTelemetry.Latency.Record(answer.LatencyMs / 1000, tag);
        EvaluationTelemetry.Tokens.Add(answer.InputTokens, tag, new("direction", "input"));
        EvaluationTelemetry.Tokens.Add(answer.OutputTokens, tag, new("direction", "output"));
        EvaluationTelemetry.Cost.Add(Cost(endpoint, answer), tag);
    }

    public static double Cost(ModelEndpointEntity endpoint, ModelAnswer answer) =>
        (answer.InputTokens * endpoint.InputPricePerMillion + answer.OutputTokens * endpoint.OutputPricePerMillion) / 1_000_000;

    /// <summary>What the user reads for a failed call; null for exceptions that are not about the call.</summary>
    private static string? Describe(Exception e, ModelEndpointEntity endpoint) => e switch
    {
        // The body of a 401 may echo part of the key (hosted APIs do): report the status only.
        HttpOperationException { StatusCode: HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden } h =>
            $"Endpoint '{endpoint.Id}' rejected the API key (HTTP {(int)h.StatusCode!}); check the configuration key named by its apiKeySecret.",
        HttpOperationException { StatusCode: { } status } => $"Endpoint '{endpoint.Id}' answered HTTP {(int)status} {status} (after retries where the status is transient).",
        HttpOperationException { InnerException: JsonException or FormatException or InvalidOperationException or ArgumentException } or JsonException or FormatException or KernelException =>
            $"Endpoint '{endpoint.Id}' answered with a body that is not an OpenAI chat completion.",
        HttpOperationException { InnerException: TimeoutRejectedException } or TimeoutRejectedException => $"Endpoint '{endpoint.Id}' did not answer in time.",
        HttpOperationException { InnerException: BrokenCircuitException } or BrokenCircuitException =>
            $"Endpoint '{endpoint.Id}' failed repeatedly; its circuit is open and calls are paused.",
        HttpOperationException { InnerException: HttpRequestException inner } => $"Endpoint '{endpoint.Id}' could not be reached: {inner.Message}",
        HttpRequestException inner => $"Endpoint '{endpoint.Id}' could not be reached: {inner.Message}",
        HttpOperationException other => $"Endpoint '{endpoint.Id}' call failed: {other.InnerException?.GetType().Name ?? "unknown error"}.",
        OperationCanceledException => $"Endpoint '{endpoint.Id}' did not answer in time.",
        _ => null,
    };

    private IChatCompletionService Connect(ModelEndpointEntity endpoint)
    {
        // Checked again at call time: rows stored before these rules were enforced are never called with a leak.
        if (!Uri.TryCreate(BaseUrl(endpoint), UriKind.Absolute, out var url) || EndpointSecrets.CredentialInUrl(url) is not null)
            throw new ModelCallException($"Endpoint '{endpoint.Id}' is not called: its base URL is not an absolute URL without credentials.");
        if (!string.IsNullOrWhiteSpace(endpoint.ApiKeySecret) && !EndpointSecrets.IsNameable(endpoint.ApiKeySecret))
            throw new ModelCallException($"Endpoint '{endpoint.Id}' is not called: its apiKeySecret is outside the '{EndpointSecrets.Section}' section; register it again with a key there.");
        var key = ResolveKey(endpoint);
        // The key is part of the identity (as a hash) so that rotating it in configuration takes effect at once.
        var identity = $"{endpoint.Id}|{endpoint.UpdatedAt.UtcTicks}|{(key is null ? "" : Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key))))}";
        if (_connections.TryGetValue(endpoint.Id, out var existing) && existing.Identity == identity)
            return existing.Service;

        var http = httpClients.CreateClient(ClientName);
        if (endpoint.Kind == EndpointKind.AzureOpenAI && key is not null)
            http.DefaultRequestHeaders.Add("api-key", key);
        var builder = Kernel.CreateBuilder();
        builder.Services.AddSingleton<ILoggerFactory>(NullLoggerFactory.Instance);
        builder.AddOpenAIChatCompletion(endpoint.Model, new Uri(BaseUrl(endpoint)), key ?? "", httpClient: http);
        var service = builder.Build().GetRequiredService<IChatCompletionService>();
        _connections[endpoint.Id] = new Connection(identity, service);
        return service;
    }

    public static string BaseUrl(ModelEndpointEntity endpoint) =>
        endpoint.BaseUrl.EndsWith('/') ? endpoint.BaseUrl : endpoint.BaseUrl + "/";

    /// <summary>SHA-256 of endpoint, model, messages, parameters and, for repeats, the repeat number.</summary>
    public static string CacheKey(ModelEndpointEntity endpoint, ModelCall call, int variant)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Add(string? value)
        {
            hash.AppendData(Encoding.UTF8.GetBytes(value ?? "\u0000null"));
            hash.AppendData([0x1f]);
        }
        Add(endpoint.Kind.ToString());
        Add(BaseUrl(endpoint));
        Add(endpoint.Model);
        Add(call.System);
        Add(call.User);
        Add(call.Temperature?.ToString("R", System.Globalization.CultureInfo.InvariantCulture));
        Add(call.MaxTokens?.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Add(variant.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (call.Choices is { } choices) // only then: keys of free answers stay what they were
            Add("guided_choice:" + string.Join('\u001e', choices));
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private sealed record Connection(string Identity, IChatCompletionService Service);

    /// <summary>Shared by every run that uses the endpoint, so two runs together still respect its limits.</summary>
    private sealed class Limits
    {
        private readonly int _concurrency;
        private readonly int? _rpm;

        public Limits(int concurrency, int? rpm)
        {
            _concurrency = concurrency;
            _rpm = rpm;
            Concurrency = new SemaphoreSlim(concurrency, concurrency);
            if (rpm is > 0)
            {
                // Refilled every second so the budget spreads over the minute instead of bursting at its start.
                var perSecond = Math.Max(1, (int)Math.Ceiling(rpm.Value / 60.0));
                Rate = new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
                {
                    TokenLimit = perSecond,
                    TokensPerPeriod = perSecond,
                    ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                    QueueLimit = int.MaxValue,
                    QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
                    AutoReplenishment = true,
                });
            }
        }

        public SemaphoreSlim Concurrency { get; }
        public TokenBucketRateLimiter? Rate { get; }

        public bool Matches(int concurrency, int? rpm) => concurrency == _concurrency && rpm == _rpm;
    }
}

using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace AspireTune.Retrieval.Index;

/// <summary>Where Qdrant is, from <c>ConnectionStrings:vectordb</c>.</summary>
public sealed record QdrantConnection(Uri Endpoint, string? ApiKey)
{
    /// <summary>
    /// Accepts Aspire's form <c>Endpoint=http://host:6333;Key=secret</c> and a plain URL. Returns null for an empty value.
    /// </summary>
    public static QdrantConnection? Parse(string? connectionString)
    {
        if (string.IsNullOrWhiteSpace(connectionString))
            return null;
        if (Uri.TryCreate(connectionString.Trim(), UriKind.Absolute, out var plain) && plain.Scheme is "http" or "https")
            return new QdrantConnection(plain, null);
        string? endpoint = null, key = null;
        foreach (var part in connectionString.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var pair = part.Split('=', 2, StringSplitOptions.TrimEntries);
            if (pair.Length != 2)
                continue;
            if (pair[0].Equals("Endpoint", StringComparison.OrdinalIgnoreCase))
                endpoint = pair[1];
            else if (pair[0].Equals("Key", StringComparison.OrdinalIgnoreCase) || pair[0].Equals("ApiKey", StringComparison.OrdinalIgnoreCase))
                key = pair[1];
        }
        return endpoint is not null && Uri.TryCreate(endpoint, UriKind.Absolute, out var uri)
            ? new QdrantConnection(uri, string.IsNullOrEmpty(key) ? null : key)
            : throw new InvalidOperationException("ConnectionStrings:vectordb must be a URL or 'Endpoint=http://host:6333;Key=...'. The value given has no valid Endpoint.");
    }
}

/// <summary>
/// A thin adapter over Qdrant's REST API (Qdrant.Client is not served here): collections, batched upserts with
/// <c>wait=true</c>, <c>points/query</c> with payload filters, delete and count, the <c>api-key</c> header.
/// Transient failures are retried by a Polly pipeline and then surface as 503, never as a hang.
/// </summary>
public sealed class QdrantVectorIndex : IVectorIndex, IDisposable
{
    private readonly HttpClient _http;
    private readonly QdrantOptions _options;
    private readonly ResiliencePipeline<HttpResponseMessage> _pipeline;
    private readonly Uri _endpoint;

    public QdrantVectorIndex(QdrantConnection connection, IOptions<QdrantOptions> options)
    {
        _options = options.Value;
        _endpoint = connection.Endpoint;
        _http = new HttpClient(new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(_options.AttemptTimeoutSeconds) })
        {
            BaseAddress = new Uri(connection.Endpoint.ToString().TrimEnd('/') + "/"),
            Timeout = Timeout.InfiniteTimeSpan, // the pipeline's per-attempt timeout governs
        };
        if (connection.ApiKey is { } key)
            _http.DefaultRequestHeaders.Add("api-key", key);
        var pipeline = new ResiliencePipelineBuilder<HttpResponseMessage>();
        if (_options.RetryCount > 0)
            pipeline.AddRetry(new RetryStrategyOptions<HttpResponseMessage>
            {
                MaxRetryAttempts = _options.RetryCount,
                Delay = TimeSpan.FromMilliseconds(_options.RetryDelayMs),
                BackoffType = DelayBackoffType.Exponential,
                ShouldHandle = new PredicateBuilder<HttpResponseMessage>()
                    .Handle<HttpRequestException>()
                    .Handle<TimeoutRejectedException>()
                    .HandleResult(r => IsTransient(r.StatusCode)),
            });
        _pipeline = pipeline.AddTimeout(TimeSpan.FromSeconds(_options.AttemptTimeoutSeconds)).Build();
    }

    private static bool IsTransient(HttpStatusCode status) =>
        status is HttpStatusCode.ServiceUnavailable or HttpStatusCode.BadGateway or HttpStatusCode.GatewayTimeout or HttpStatusCode.TooManyRequests;

    public string Kind => "qdrant";

    public async Task CreateCollectionAsync(string collection, int dimensions, VectorDistance distance, CancellationToken ct)
    {
        using var existing = await SendAsync(HttpMethod.Get, $"collections/{Uri.EscapeDataString(collection)}", null, ct, allowNotFound: true);
        if (existing.StatusCode != HttpStatusCode.NotFound)
        {
            var info = await ReadResultAsync(existing, ct);
            var vectors = info?["config"]?["params"]?["vectors"];
            var size = vectors?["size"]?.GetValue<int>();
            if (size is { } s && s != dimensions)
                throw new CollectionConflictException($"Qdrant already holds '{collection}' with {s} dimensions; {dimensions} were asked for.");
            return;
        }
        var body = new JsonObject
        {
            ["vectors"] = new JsonObject { ["size"] = dimensions, ["distance"] = distance.ToString() },
        };
        using var created = await SendAsync(HttpMethod.Put, $"collections/{Uri.EscapeDataString(collection)}", body, ct);
        // Filters on labels and metadata are exact matches: keyword indexes keep them fast on large collections.
        foreach (var field in new[] { "label", "document_id" })
        {
            var index = new JsonObject { ["field_name"] = field, ["field_schema"] = "keyword" };
            using var _ = await SendAsync(HttpMethod.Put, $"collections/{Uri.EscapeDataString(collection)}/index?wait=true", index, ct);
        }
    }

    public async Task DeleteCollectionAsync(string collection, CancellationToken ct)
    {
        using var _ = await SendAsync(HttpMethod.Delete, $"collections/{Uri.EscapeDataString(collection)}", null, ct, allowNotFound: true);
    }

    public async Task UpsertAsync(string collection, IReadOnlyList<IndexPoint> points, CancellationToken ct)
    {
        foreach (var batch in points.Chunk(_options.UpsertBatchSize))
        {
            var array = new JsonArray();
            foreach (var point in batch)
                array.Add(new JsonObject
                {
                    ["id"] = point.Id,
                    ["vector"] = JsonSerializer.SerializeToNode(point.Vector.ToArray()),
                    ["payload"] = ToPayload(point.Payload),
                });
            using var _ = await SendAsync(HttpMethod.Put, $"collections/{Uri.EscapeDataString(collection)}/points?wait=true", new JsonObject { ["points"] = array }, ct);
        }
    }

    public async Task DeleteAsync(string collection, IReadOnlyCollection<string> ids, CancellationToken ct)
    {
        foreach (var batch in ids.Chunk(_options.UpsertBatchSize))
        {
            var body = new JsonObject { ["points"] = new JsonArray(batch.Select(id => (JsonNode)JsonValue.Create(id)!).ToArray()) };
            using var _ = await SendAsync(HttpMethod.Post, $"collections/{Uri.EscapeDataString(collection)}/points/delete?wait=true", body, ct);
        }
    }

    public async Task<IReadOnlyList<IndexHit>> QueryAsync(string collection, ReadOnlyMemory<float> vector, int k, IReadOnlyDictionary<string, string>? filter, bool withVectors, CancellationToken ct)
    {
        var body = new JsonObject
        {
            ["query"] = JsonSerializer.SerializeToNode(vector.ToArray()),
            ["limit"] = k,
            ["with_payload"] = true,
            ["with_vector"] = withVectors,
        };
        if (ToFilter(filter) is { } f)
            body["filter"] = f;
        using var response = await SendAsync(HttpMethod.Post, $"collections/{Uri.EscapeDataString(collection)}/points/query", body, ct);
        var result = await ReadResultAsync(response, ct);
        var hits = new List<IndexHit>();
        foreach (var point in result?["points"]?.AsArray() ?? [])
        {
            var payload = point!["payload"] ?? new JsonObject();
            hits.Add(new IndexHit(
                point["id"]!.ToString(),
                point["score"]!.GetValue<float>(),
                FromPayload(payload),
                withVectors && point["vector"] is JsonArray v ? v.Select(x => x!.GetValue<float>()).ToArray() : null));
        }
        return hits;
    }

    public async Task<long> CountAsync(string collection, CancellationToken ct)
    {
        using var response = await SendAsync(HttpMethod.Post, $"collections/{Uri.EscapeDataString(collection)}/points/count", new JsonObject { ["exact"] = true }, ct);
        var result = await ReadResultAsync(response, ct);
        return result?["count"]?.GetValue<long>() ?? 0;
    }

    /// <summary>Equality on <c>label</c> or <c>metadata.&lt;field&gt;</c>; a value that reads as a number or boolean also matches that type.</summary>
    internal static JsonObject? ToFilter(IReadOnlyDictionary<string, string>? filter)
    {
        if (filter is not { Count: > 0 })
            return null;
        var must = new JsonArray();
        foreach (var (field, value) in filter)
        {
            var key = field == FilterFields.Label ? "label" : $"metadata.{field}";
            var alternatives = new List<JsonNode> { JsonValue.Create(value)! };
            if (long.TryParse(value, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var number))
                alternatives.Add(JsonValue.Create(number)!);
            if (bool.TryParse(value, out var flag))
                alternatives.Add(JsonValue.Create(flag)!);
            if (alternatives.Count == 1)
                must.Add(new JsonObject { ["key"] = key, ["match"] = new JsonObject { ["value"] = alternatives[0] } });
            else
                must.Add(new JsonObject
                {
                    ["should"] = new JsonArray(alternatives.Select(a => (JsonNode)new JsonObject { ["key"] = key, ["match"] = new JsonObject { ["value"] = a } }).ToArray()),
                });
        }
        return new JsonObject { ["must"] = must };
    }

    private static JsonObject ToPayload(PointPayload payload) => new()
    {
        ["text"] = payload.Text,
        ["label"] = payload.Label,
        ["document_id"] = payload.DocumentId,
        ["metadata"] = JsonSerializer.SerializeToNode(payload.Metadata),
    };

    private static PointPayload FromPayload(JsonNode payload) => new()
    {
        Text = payload["text"]?.GetValue<string>() ?? "",
        Label = payload["label"]?.GetValue<string>(),
        DocumentId = payload["document_id"]?.GetValue<string>() ?? "",
        Metadata = payload["metadata"] is JsonObject m ? m.Deserialize<Dictionary<string, JsonElement>>() ?? [] : [],
    };

    private static async Task<JsonNode?> ReadResultAsync(HttpResponseMessage response, CancellationToken ct)
    {
        var body = await response.Content.ReadFromJsonAsync<JsonNode>(ct);
        return body?["result"];
    }

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, JsonNode? body, CancellationToken ct, bool allowNotFound = false)
    {
        HttpResponseMessage response;
        try
        {
            response = await _pipeline.ExecuteAsync(async token =>
            {
                using var request = new HttpRequestMessage(method, path);
                if (body is not null)
                    request.Content = JsonContent.Create(body);
                return await _http.SendAsync(request, token);
            }, ct);
        }
        catch (Exception e) when (e is HttpRequestException or TimeoutRejectedException)
        {
            throw new DependencyUnavailableException($"Qdrant at {_endpoint} did not answer {method} /{path.Split('?')[0]} after {_options.RetryCount} retries: {e.Message}", e);
        }
        if (response.IsSuccessStatusCode || (allowNotFound && response.StatusCode == HttpStatusCode.NotFound))
            return response;
        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(ct);
            var error = TryReadError(text) ?? text;
            if (IsTransient(response.StatusCode))
                throw new DependencyUnavailableException($"Qdrant at {_endpoint} answered {(int)response.StatusCode} to {method} /{path.Split('?')[0]} after {_options.RetryCount} retries: {error}");
            if (response.StatusCode == HttpStatusCode.NotFound)
                throw new CollectionNotFoundException(path.Split('/')[1]);
            throw new DependencyFailedException($"Qdrant answered {(int)response.StatusCode} to {method} /{path.Split('?')[0]}: {error}");
        }
    }

    private static string? TryReadError(string text)
    {
        try
        {
            return JsonNode.Parse(text)?["status"]?["error"]?.GetValue<string>();
        }
        catch (JsonException)
        {
            return null; // not Qdrant's JSON error shape: the raw text is reported instead
        }
    }

    public void Dispose() => _http.Dispose();
}

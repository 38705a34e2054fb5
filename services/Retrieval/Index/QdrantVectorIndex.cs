using System.Globalization;
using System.Text.Json;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Retry;
using Polly.Timeout;
using Qdrant.Client;
using Qdrant.Client.Grpc;
using static Qdrant.Client.Grpc.Conditions;

namespace AspireTune.Retrieval.Index;

/// <summary>Where Qdrant is, from <c>ConnectionStrings:vectordb</c>.</summary>
public sealed record QdrantConnection(Uri Endpoint, string? ApiKey)
{
    /// <summary>
    /// Accepts Aspire's form <c>Endpoint=http://host:6334;Key=secret</c> (Qdrant's gRPC port, as Aspire's Qdrant resource
    /// yields it) and a plain URL. Returns null for an empty value.
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
            : throw new InvalidOperationException("ConnectionStrings:vectordb must be a URL or 'Endpoint=http://host:6334;Key=...'. The value given has no valid Endpoint.");
    }
}

/// <summary>
/// Qdrant through its official client (Qdrant.Client, gRPC): collections with keyword indexes on the filter fields,
/// batched upserts that wait for the write, <c>Query</c> with payload filters, delete and exact count, the API key.
/// Transient failures (unavailable, deadline, resource exhausted) are retried by a Polly pipeline and then surface as
/// 503, never as a hang.
/// </summary>
public sealed class QdrantVectorIndex : IVectorIndex, IDisposable
{
    private readonly QdrantClient _client;
    private readonly QdrantOptions _options;
    private readonly ResiliencePipeline _pipeline;
    private readonly Uri _endpoint;

    public QdrantVectorIndex(QdrantConnection connection, IOptions<QdrantOptions> options)
    {
        _options = options.Value;
        _endpoint = connection.Endpoint;
        _client = new QdrantClient(connection.Endpoint, connection.ApiKey, TimeSpan.FromSeconds(_options.AttemptTimeoutSeconds));
        var pipeline = new ResiliencePipelineBuilder();
        if (_options.RetryCount > 0)
            pipeline.AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = _options.RetryCount,
                Delay = TimeSpan.FromMilliseconds(_options.RetryDelayMs),
                BackoffType = DelayBackoffType.Exponential,
                ShouldHandle = new PredicateBuilder().Handle<RpcException>(e => IsTransient(e.StatusCode)).Handle<TimeoutRejectedException>(),
            });
        _pipeline = pipeline.AddTimeout(TimeSpan.FromSeconds(_options.AttemptTimeoutSeconds)).Build();
    }

    private static bool IsTransient(StatusCode status) =>
        status is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.ResourceExhausted or StatusCode.Aborted;

    public string Kind => "qdrant";

    public async Task CreateCollectionAsync(string collection, int dimensions, VectorDistance distance, CancellationToken ct)
    {
        if (await CallAsync("collection exists", t => _client.CollectionExistsAsync(collection, t), ct))
        {
            var info = await CallAsync("get collection", t => _client.GetCollectionInfoAsync(collection, t), ct);
            var size = info.Config?.Params?.VectorsConfig?.Params?.Size;
            if (size is { } s && s != (ulong)dimensions)
                throw new CollectionConflictException($"Qdrant already holds '{collection}' with {s} dimensions; {dimensions} were asked for.");
            return;
        }
        var parameters = new VectorParams { Size = (ulong)dimensions, Distance = distance switch { VectorDistance.Dot => Distance.Dot, VectorDistance.Euclid => Distance.Euclid, _ => Distance.Cosine } };
        await CallAsync("create collection", t => _client.CreateCollectionAsync(collection, parameters, cancellationToken: t), ct);
        // Filters on labels and metadata are exact matches: keyword indexes keep them fast on large collections.
        foreach (var field in new[] { "label", "document_id" })
            await CallAsync("create payload index", t => _client.CreatePayloadIndexAsync(collection, field, PayloadSchemaType.Keyword, wait: true, cancellationToken: t), ct);
    }

    public Task DeleteCollectionAsync(string collection, CancellationToken ct) =>
        CallAsync("delete collection", async t =>
        {
            if (await _client.CollectionExistsAsync(collection, t))
                await _client.DeleteCollectionAsync(collection, cancellationToken: t);
            return true;
        }, ct);

    public async Task UpsertAsync(string collection, IReadOnlyList<IndexPoint> points, CancellationToken ct)
    {
        foreach (var batch in points.Chunk(_options.UpsertBatchSize))
        {
            var structs = batch.Select(ToPoint).ToList();
            await CallAsync("upsert", t => _client.UpsertAsync(collection, structs, wait: true, cancellationToken: t), ct, collection);
        }
    }

    public async Task DeleteAsync(string collection, IReadOnlyCollection<string> ids, CancellationToken ct)
    {
        foreach (var batch in ids.Chunk(_options.UpsertBatchSize))
        {
            var guids = batch.Select(Guid.Parse).ToList();
            await CallAsync("delete points", t => _client.DeleteAsync(collection, guids, wait: true, cancellationToken: t), ct, collection);
        }
    }

    public async Task<IReadOnlyList<IndexHit>> QueryAsync(string collection, ReadOnlyMemory<float> vector, int k, IReadOnlyDictionary<string, string>? filter, bool withVectors, CancellationToken ct)
    {
        var query = vector.ToArray();
        var points = await CallAsync("query", t => _client.QueryAsync(collection, query, filter: ToFilter(filter), limit: (ulong)k,
            payloadSelector: true, vectorsSelector: withVectors, cancellationToken: t), ct, collection);
        return points.Select(p => new IndexHit(
            p.Id.HasUuid ? p.Id.Uuid : p.Id.Num.ToString(CultureInfo.InvariantCulture),
            p.Score,
            FromPayload(p.Payload),
            withVectors ? DenseVector(p.Vectors) : null)).ToList();
    }

    public async Task<long> CountAsync(string collection, CancellationToken ct) =>
        (long)await CallAsync("count", t => _client.CountAsync(collection, exact: true, cancellationToken: t), ct, collection);

    /// <summary>Equality on <c>label</c> or <c>metadata.&lt;field&gt;</c>; a value that reads as a number or boolean also matches that type.</summary>
    internal static Filter? ToFilter(IReadOnlyDictionary<string, string>? filter)
    {
        if (filter is not { Count: > 0 })
            return null;
        var must = new Filter();
        foreach (var (field, value) in filter)
        {
            var key = field == FilterFields.Label ? "label" : $"metadata.{field}";
            var alternatives = new List<Condition> { MatchKeyword(key, value) };
            if (long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var number))
                alternatives.Add(Match(key, number));
            if (bool.TryParse(value, out var flag))
                alternatives.Add(Match(key, flag));
            if (alternatives.Count == 1)
                must.Must.Add(alternatives[0]);
            else
            {
                var any = new Filter();
                any.Should.AddRange(alternatives);
                must.Must.Add(new Condition { Filter = any });
            }
        }
        return must;
    }

    internal static PointStruct ToPoint(IndexPoint point)
    {
        var structure = new PointStruct { Id = Guid.Parse(point.Id), Vectors = point.Vector.ToArray() };
        structure.Payload["text"] = point.Payload.Text;
        structure.Payload["label"] = point.Payload.Label is { } label ? label : new Value { NullValue = NullValue.NullValue };
        structure.Payload["document_id"] = point.Payload.DocumentId;
        var metadata = new Struct();
        foreach (var (name, value) in point.Payload.Metadata)
            metadata.Fields[name] = ToValue(value);
        structure.Payload["metadata"] = new Value { StructValue = metadata };
        return structure;
    }

    internal static PointPayload FromPayload(IDictionary<string, Value> payload) => new()
    {
        Text = payload.TryGetValue("text", out var text) ? text.StringValue : "",
        Label = payload.TryGetValue("label", out var label) && label.KindCase == Value.KindOneofCase.StringValue ? label.StringValue : null,
        DocumentId = payload.TryGetValue("document_id", out var document) ? document.StringValue : "",
        Metadata = payload.TryGetValue("metadata", out var metadata) && metadata.KindCase == Value.KindOneofCase.StructValue
            ? metadata.StructValue.Fields.ToDictionary(f => f.Key, f => FromValue(f.Value))
            : [],
    };

    /// <summary>JSON metadata as Qdrant payload values (numbers integral when they are), so filters match them by type.</summary>
    private static Value ToValue(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.String => element.GetString()!,
        JsonValueKind.Number when element.TryGetInt64(out var integer) => integer,
        JsonValueKind.Number => element.GetDouble(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Array => new Value { ListValue = new ListValue { Values = { element.EnumerateArray().Select(ToValue) } } },
        JsonValueKind.Object => new Value { StructValue = new Struct { Fields = { element.EnumerateObject().ToDictionary(p => p.Name, p => ToValue(p.Value)) } } },
        _ => new Value { NullValue = NullValue.NullValue },
    };

    private static JsonElement FromValue(Value value) => JsonSerializer.SerializeToElement<object?>(Plain(value));

    private static object? Plain(Value value) => value.KindCase switch
    {
        Value.KindOneofCase.StringValue => value.StringValue,
        Value.KindOneofCase.IntegerValue => value.IntegerValue,
        Value.KindOneofCase.DoubleValue => value.DoubleValue,
        Value.KindOneofCase.BoolValue => value.BoolValue,
        Value.KindOneofCase.ListValue => value.ListValue.Values.Select(Plain).ToList(),
        Value.KindOneofCase.StructValue => value.StructValue.Fields.ToDictionary(f => f.Key, f => Plain(f.Value)),
        _ => null,
    };

    private static float[]? DenseVector(VectorsOutput? vectors) =>
        vectors?.Vector?.Dense?.Data.ToArray();

    private async Task<T> CallAsync<T>(string operation, Func<CancellationToken, Task<T>> call, CancellationToken ct, string? collection = null)
    {
        try
        {
            return await _pipeline.ExecuteAsync(async token => await call(token), ct);
        }
        catch (RpcException e) when (IsTransient(e.StatusCode))
        {
            throw new DependencyUnavailableException($"Qdrant at {_endpoint} did not answer '{operation}' after {_options.RetryCount} retries: {e.Status.Detail}", e);
        }
        catch (TimeoutRejectedException e)
        {
            throw new DependencyUnavailableException($"Qdrant at {_endpoint} did not answer '{operation}' within {_options.AttemptTimeoutSeconds} s, {_options.RetryCount} retries: {e.Message}", e);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.NotFound && collection is not null)
        {
            throw new CollectionNotFoundException(collection);
        }
        catch (RpcException e)
        {
            throw new DependencyFailedException($"Qdrant answered {e.StatusCode} to '{operation}': {e.Status.Detail}");
        }
    }

    private Task CallAsync(string operation, Func<CancellationToken, Task> call, CancellationToken ct, string? collection = null) =>
        CallAsync(operation, async t => { await call(t); return true; }, ct, collection);

    public void Dispose() => _client.Dispose();
}

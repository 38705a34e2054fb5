using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using AspireTune.Retrieval.Embeddings;
using AspireTune.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace AspireTune.Retrieval.Tests;

/// <summary>A real HTTP server on 127.0.0.1 for a dependency that cannot run here.</summary>
internal abstract class LoopbackServer : IAsyncDisposable
{
    private WebApplication? _app;

    public Uri Url { get; private set; } = null!;

    public ConcurrentQueue<string> Requests { get; } = new();

    protected abstract void Map(WebApplication app);

    public async Task StartAsync()
    {
        var port = TestInfrastructure.FreePort();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.Logging.ClearProviders();
        _app = builder.Build();
        Map(_app);
        await _app.StartAsync();
        Url = new Uri($"http://127.0.0.1:{port}");
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
            await _app.DisposeAsync();
    }
}

/// <summary>
/// Answers Qdrant's documented REST shapes (collections, points upsert/query/delete/count, payload index) from memory,
/// and refuses requests without the expected <c>api-key</c> header as Qdrant does (401).
/// </summary>
internal sealed class FakeQdrant(string? apiKey = null) : LoopbackServer
{
    private readonly ConcurrentDictionary<string, (int Size, string Distance, ConcurrentDictionary<string, JsonObject> Points)> _collections = new();
    private long _operation;

    private static IResult Ok(JsonNode? result) => Results.Json(new JsonObject { ["result"] = result, ["status"] = "ok", ["time"] = 0.0001 });

    private static IResult NotFound(string name) =>
        Results.Json(new JsonObject { ["status"] = new JsonObject { ["error"] = $"Not found: Collection `{name}` doesn't exist!" }, ["time"] = 0.0 }, statusCode: 404);

    private IResult Updated() => Ok(new JsonObject { ["operation_id"] = Interlocked.Increment(ref _operation), ["status"] = "completed" });

    protected override void Map(WebApplication app)
    {
        app.Use(async (ctx, next) =>
        {
            Requests.Enqueue($"{ctx.Request.Method} {ctx.Request.Path}{ctx.Request.QueryString}");
            if (apiKey is not null && ctx.Request.Headers["api-key"] != apiKey)
            {
                ctx.Response.StatusCode = 401;
                await ctx.Response.WriteAsync("Must provide an API key or an Authorization bearer token");
                return;
            }
            await next(ctx);
        });
        app.MapGet("/collections/{name}", (string name) => _collections.TryGetValue(name, out var c)
            ? Ok(new JsonObject
            {
                ["status"] = "green",
                ["points_count"] = c.Points.Count,
                ["config"] = new JsonObject { ["params"] = new JsonObject { ["vectors"] = new JsonObject { ["size"] = c.Size, ["distance"] = c.Distance } } },
            })
            : NotFound(name));
        app.MapPut("/collections/{name}", async (string name, HttpRequest request) =>
        {
            var body = (await JsonNode.ParseAsync(request.Body))!;
            var vectors = body["vectors"]!;
            _collections.TryAdd(name, (vectors["size"]!.GetValue<int>(), vectors["distance"]!.GetValue<string>(), new()));
            return Ok(true);
        });
        app.MapDelete("/collections/{name}", (string name) => Ok(_collections.TryRemove(name, out _)));
        app.MapPut("/collections/{name}/index", (string name) => _collections.ContainsKey(name) ? Updated() : NotFound(name));
        app.MapPut("/collections/{name}/points", async (string name, HttpRequest request) =>
        {
            if (!_collections.TryGetValue(name, out var c))
                return NotFound(name);
            var body = (await JsonNode.ParseAsync(request.Body))!;
            foreach (var point in body["points"]!.AsArray())
            {
                if (point!["vector"]!.AsArray().Count != c.Size)
                    return Results.Json(new JsonObject { ["status"] = new JsonObject { ["error"] = $"Wrong input: Vector dimension error: expected dim: {c.Size}, got {point["vector"]!.AsArray().Count}" } }, statusCode: 400);
                c.Points[point["id"]!.GetValue<string>()] = point.DeepClone().AsObject();
            }
            return Updated();
        });
        app.MapPost("/collections/{name}/points/delete", async (string name, HttpRequest request) =>
        {
            if (!_collections.TryGetValue(name, out var c))
                return NotFound(name);
            var body = (await JsonNode.ParseAsync(request.Body))!;
            foreach (var id in body["points"]!.AsArray())
                c.Points.TryRemove(id!.GetValue<string>(), out _);
            return Updated();
        });
        app.MapPost("/collections/{name}/points/count", (string name) =>
            _collections.TryGetValue(name, out var c) ? Ok(new JsonObject { ["count"] = c.Points.Count }) : NotFound(name));
        app.MapPost("/collections/{name}/points/query", async (string name, HttpRequest request) =>
        {
            if (!_collections.TryGetValue(name, out var c))
                return NotFound(name);
            var body = (await JsonNode.ParseAsync(request.Body))!;
            var query = body["query"]!.AsArray().Select(x => x!.GetValue<float>()).ToArray();
            var limit = body["limit"]?.GetValue<int>() ?? 10;
            var withVector = body["with_vector"]?.GetValue<bool>() ?? false;
            var points = c.Points.Values
                .Where(p => Matches(p["payload"]!, body["filter"]))
                .Select(p => (Point: p, Score: Cosine(query, p["vector"]!.AsArray().Select(x => x!.GetValue<float>()).ToArray())))
                .OrderByDescending(x => x.Score).Take(limit)
                .Select(x =>
                {
                    var scored = new JsonObject { ["id"] = x.Point["id"]!.DeepClone(), ["version"] = 1, ["score"] = x.Score, ["payload"] = x.Point["payload"]!.DeepClone() };
                    if (withVector)
                        scored["vector"] = x.Point["vector"]!.DeepClone();
                    return (JsonNode)scored;
                }).ToArray();
            return Ok(new JsonObject { ["points"] = new JsonArray(points) });
        });
    }

    private static float Cosine(float[] a, float[] b) => System.Numerics.Tensors.TensorPrimitives.CosineSimilarity(a, b);

    /// <summary>Qdrant filter semantics for what the adapter sends: <c>must</c> of field matches or nested <c>should</c>.</summary>
    private static bool Matches(JsonNode payload, JsonNode? filter)
    {
        if (filter is null)
            return true;
        foreach (var condition in filter["must"]?.AsArray() ?? [])
        {
            if (condition!["should"] is JsonArray any)
            {
                if (!any.Any(a => Condition(payload, a!)))
                    return false;
            }
            else if (!Condition(payload, condition))
                return false;
        }
        return true;
    }

    private static bool Condition(JsonNode payload, JsonNode condition)
    {
        JsonNode? value = payload;
        foreach (var part in condition["key"]!.GetValue<string>().Split('.'))
            value = value?[part];
        return value is not null && JsonNode.DeepEquals(value, condition["match"]!["value"]);
    }
}

/// <summary>
/// An OpenAI-compatible <c>/v1/embeddings</c> endpoint: hashing vectors of a chosen size, as floats or as base64
/// little-endian float32 (the OpenAI client asks for base64). Checks the bearer key; can refuse inputs with a marker.
/// </summary>
internal sealed class FakeOpenAIEmbeddings(int dimensions, string apiKey, string? refuseTextContaining = null) : LoopbackServer
{
    private readonly HashingEmbeddingGenerator _generator = new(dimensions);

    protected override void Map(WebApplication app)
    {
        app.MapPost("/v1/embeddings", async (HttpRequest request) =>
        {
            Requests.Enqueue(request.Headers.Authorization.ToString());
            if (request.Headers.Authorization != $"Bearer {apiKey}")
                return Results.Json(new JsonObject { ["error"] = new JsonObject { ["message"] = "Incorrect API key provided.", ["type"] = "invalid_request_error" } }, statusCode: 401);
            var body = (await JsonNode.ParseAsync(request.Body))!;
            var inputs = body["input"] is JsonArray array ? array.Select(i => i!.GetValue<string>()).ToList() : [body["input"]!.GetValue<string>()];
            if (refuseTextContaining is not null && inputs.Any(i => i.Contains(refuseTextContaining, StringComparison.Ordinal)))
                return Results.Json(new JsonObject { ["error"] = new JsonObject { ["message"] = "This input was refused by the content filter.", ["type"] = "invalid_request_error" } }, statusCode: 400);
            var base64 = body["encoding_format"]?.GetValue<string>() == "base64";
            var data = new JsonArray();
            for (var i = 0; i < inputs.Count; i++)
            {
                var vector = _generator.Embed(inputs[i]);
                JsonNode embedding = base64
                    ? JsonValue.Create(Convert.ToBase64String(System.Runtime.InteropServices.MemoryMarshal.AsBytes(vector.AsSpan())))!
                    : new JsonArray(vector.Select(v => (JsonNode)JsonValue.Create(v)!).ToArray());
                data.Add(new JsonObject { ["object"] = "embedding", ["index"] = i, ["embedding"] = embedding });
            }
            return Results.Json(new JsonObject
            {
                ["object"] = "list",
                ["data"] = data,
                ["model"] = body["model"]!.GetValue<string>(),
                ["usage"] = new JsonObject { ["prompt_tokens"] = inputs.Count * 4, ["total_tokens"] = inputs.Count * 4 },
            });
        });
    }
}

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

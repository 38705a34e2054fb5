using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using AspireTune.Retrieval.Embeddings;
using AspireTune.Retrieval.Search;
using AspireTune.ServiceDefaults.OpenAi;
using AspireTune.ServiceDefaults.Security;
using Microsoft.Extensions.Options;
using static AspireTune.ServiceDefaults.OpenAi.OpenAiRequest;

namespace AspireTune.Retrieval.Apis;

/// <summary>
/// <c>POST /v1/embeddings</c> in the OpenAI shape, served by Retrieval because it owns the embedding models: the
/// vectors come from the same <see cref="EmbeddingService"/> call that indexing makes, so a client's query vector
/// equals what a collection of that model and dimensions stores. <c>local-hashing</c> takes any <c>dimensions</c>
/// from 8 to 8,192 (default <c>Retrieval:DefaultDimensions</c>); another model name goes to the configured hosted
/// endpoint, <c>dimensions</c> passed on.
/// </summary>
public static class EmbeddingsApi
{
    private const int MaxInputs = 2048;

    public static IEndpointRouteBuilder MapEmbeddingsApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/v1/embeddings", EmbedAsync).WithTags("OpenAI-compatible embeddings").RequireAuthorization(Policies.Reader);
        return app;
    }

    public static async Task<IResult> EmbedAsync(HttpRequest http, EmbeddingService embeddings, IOptions<RetrievalOptions> options, CancellationToken ct)
    {
        try
        {
            var body = await ReadBodyAsync(http, ct);
            var model = OptionalString(body, "model") is { Length: > 0 } m ? m
                : throw new OpenAiException(400, $"'model' is required: '{HashingEmbeddingGenerator.ModelName}' or a configured hosted embedding model.", "model");
            var inputs = body["input"] switch
            {
                JsonValue v when v.GetValueKind() == JsonValueKind.String => [v.GetValue<string>()],
                JsonArray a when a.Count > 0 && a.All(x => x?.GetValueKind() == JsonValueKind.String) => a.Select(x => x!.GetValue<string>()).ToList(),
                JsonArray a when a.Count > 0 && a.All(x => x?.GetValueKind() is JsonValueKind.Number or JsonValueKind.Array) =>
                    throw new OpenAiException(400, "Token-id inputs are not supported: the embedding models here read text. Send a string or an array of strings.", "input"),
                _ => throw new OpenAiException(400, "'input' must be a non-empty string or array of strings.", "input"),
            };
            if (inputs.Count > MaxInputs)
                throw new OpenAiException(400, $"'input' holds {inputs.Count} texts; at most {MaxInputs} per request.", "input");
            if (inputs.Any(string.IsNullOrEmpty))
                throw new OpenAiException(400, "'input' must not contain empty strings.", "input");
            var format = OptionalString(body, "encoding_format") ?? "float";
            if (format is not ("float" or "base64"))
                throw new OpenAiException(400, $"encoding_format '{format}' is not float or base64.", "encoding_format");
            var dimensions = OptionalInt(body, "dimensions", 8, 8192) ?? options.Value.DefaultDimensions;
            if (!EmbeddingService.IsLocal(model) && body["dimensions"] is null)
                dimensions = 0;

            float[][] vectors;
            try
            {
                vectors = await embeddings.EmbedForClientAsync(model, dimensions, inputs, ct);
            }
            catch (RetrievalValidationException ex)
            {
                throw new OpenAiException(404, ex.Message, "model", "model_not_found");
            }
            catch (DependencyUnavailableException ex)
            {
                throw new OpenAiException(503, ex.Message, "model", "upstream_unavailable", "server_error");
            }
            catch (DependencyFailedException ex)
            {
                throw new OpenAiException(502, ex.Message, "model", "upstream_error", "server_error");
            }

            var data = new JsonArray();
            for (var i = 0; i < vectors.Length; i++)
                data.Add(new JsonObject
                {
                    ["object"] = "embedding",
                    ["index"] = i,
                    // base64 is the little-endian float32 bytes, as the OpenAI SDKs decode it.
                    ["embedding"] = format == "base64" ? Convert.ToBase64String(MemoryMarshal.AsBytes(vectors[i].AsSpan())) : new JsonArray(vectors[i].Select(x => (JsonNode)x).ToArray()),
                });
            var tokens = inputs.Sum(t => TextAnalyzer.Tokens(t).Count);
            return Results.Json(new JsonObject
            {
                ["object"] = "list",
                ["data"] = data,
                ["model"] = model,
                ["usage"] = new JsonObject { ["prompt_tokens"] = tokens, ["total_tokens"] = tokens },
            });
        }
        catch (OpenAiException ex)
        {
            return ex.ToResult();
        }
    }
}

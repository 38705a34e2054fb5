using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AspireTune.FineTuning.Curation;
using AspireTune.FineTuning.Data;
using AspireTune.FineTuning.Registry;
using AspireTune.Engine.Generation;
using AspireTune.ServiceDefaults;
using AspireTune.ServiceDefaults.Security;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;

using static AspireTune.ServiceDefaults.OpenAi.OpenAiRequest;

namespace AspireTune.FineTuning.Serving;

/// <summary>
/// The OpenAI-compatible API over registered models: <c>GET /v1/models</c>, <c>POST /v1/chat/completions</c>
/// (<see cref="ChatCompletionsApi"/>) and <c>POST /v1/completions</c> (<see cref="CompletionsApi"/>), and what
/// they share. Bodies are parsed by hand so every error, malformed JSON included, comes back in the OpenAI error
/// shape that SDKs and harnesses read.
/// </summary>
public static class OpenAiApi
{
    public static IEndpointRouteBuilder MapOpenAiApi(this IEndpointRouteBuilder app)
    {
        // Unknown /v1 routes answer in the OpenAI shape too, as SDKs read it.
        app.MapFallback("/v1/{**path}", (string? path) => new OpenAiException(404, $"Unknown route /v1/{path}.", null, "unknown_route").ToResult())
            .RequireAuthorization(Policies.Reader).WithMetadata(OpenAiException.Shape).ExcludeFromDescription();
        var group = app.MapGroup("/v1").WithTags("OpenAI-compatible serving").RequireAuthorization(Policies.Reader).WithMetadata(OpenAiException.Shape);
        group.MapGet("/models", ListModelsAsync);
        group.MapGet("/models/{id}", GetModelAsync);
        group.MapPost("/chat/completions", ChatCompletionsApi.ChatAsync);
        group.MapPost("/completions", CompletionsApi.CompletionsAsync);
        group.MapPost("/tokenize", TokenizeApi.TokenizeAsync);
        return app;
    }

    /// <summary>The registered models, then the kept training checkpoints of jobs (served as <c>ft:...:ckpt-step-N</c>).</summary>
    public static async Task<IResult> ListModelsAsync(FineTuningDbContext db, CheckpointModels checkpoints, ModelRegistry registry, CancellationToken ct)
    {
        var registered = await db.Models.AsNoTracking().ToListAsync(ct);
        var byId = registered.ToDictionary(m => m.Id);
        var models = registered.Concat(await checkpoints.ListAsync(db, ct));
        var data = new JsonArray(models.OrderBy(m => m.CreatedAt).Select(m => (JsonNode)ModelObject(m, registry, byId.GetValueOrDefault(m.BaseModel ?? ""))).ToArray());
        return Results.Json(new JsonObject { ["object"] = "list", ["data"] = data });
    }

    public static async Task<IResult> GetModelAsync(string id, FineTuningDbContext db, CheckpointModels checkpoints, ModelRegistry registry, CancellationToken ct)
    {
        try
        {
            var model = await FindAsync(db, checkpoints, id, ct);
            var baseModel = model.Source == ModelSource.Checkpoint ? await db.Models.AsNoTracking().FirstOrDefaultAsync(m => m.Id == model.BaseModel, ct) : null;
            return Results.Json(ModelObject(model, registry, baseModel));
        }
        catch (OpenAiException ex)
        {
            return ex.ToResult();
        }
    }

    /// <summary>The OpenAI model object, with vLLM's <c>max_model_len</c>: the context a client may fill (a checkpoint's is its base's).</summary>
    private static JsonObject ModelObject(RegisteredModel m, ModelRegistry registry, RegisteredModel? baseModel) => new()
    {
        ["id"] = m.Id,
        ["object"] = "model",
        ["created"] = m.CreatedAt.ToUnixTimeSeconds(),
        ["owned_by"] = m.Source is ModelSource.FineTuned or ModelSource.Checkpoint ? "aspiretune-fine-tuning" : "aspiretune",
        ["max_model_len"] = m.Source == ModelSource.Checkpoint ? baseModel is null ? null : registry.ContextLength(baseModel) : registry.ContextLength(m),
    };

    internal static OpenAiException ModelNotFound(string id) =>
        new(404, $"The model '{id}' does not exist. GET /v1/models lists the served models.", "model", "model_not_found");

    internal static void CheckContext(ModelHost.Lease lease, int promptTokens, int maxTokens, string param)
    {
        var context = lease.Model.Config.MaxPositions;
        if (promptTokens > context)
            throw new OpenAiException(400, $"The prompt is {promptTokens} tokens; this model's context is {context} tokens.", param, "context_length_exceeded");
        if (promptTokens + maxTokens > context && maxTokens > 0)
            throw new OpenAiException(400, $"The prompt ({promptTokens} tokens) plus max_tokens ({maxTokens}) exceeds this model's context of {context} tokens.", "max_tokens", "context_length_exceeded");
        var generator = lease.Generator;
        if (maxTokens > 0 && generator.TokensNeeded(promptTokens, maxTokens) > generator.CapacityTokens)
            throw new OpenAiException(400, $"The prompt ({promptTokens} tokens) plus max_tokens ({maxTokens}) needs more than the {generator.CapacityTokens} key/value cache positions this server gives a model (FineTuning:ServingKvCacheTokens).",
                "max_tokens", "context_length_exceeded");
    }

    /// <summary>The request's model, to generate with: a checkpoint model's directory is written on its first use.</summary>
    internal static async Task<RegisteredModel> FindModelAsync(FineTuningDbContext db, CheckpointModels checkpoints, JsonObject body, CancellationToken ct)
    {
        if (body["model"] is not JsonValue v || v.GetValueKind() != JsonValueKind.String || string.IsNullOrWhiteSpace(v.GetValue<string>()))
            throw new OpenAiException(400, "'model' is required: the id of a served model (GET /v1/models).", "model");
        return await FindAsync(db, checkpoints, v.GetValue<string>(), ct, export: true);
    }

    private static async Task<RegisteredModel> FindAsync(FineTuningDbContext db, CheckpointModels checkpoints, string id, CancellationToken ct, bool export = false)
    {
        if (await db.Models.AsNoTracking().FirstOrDefaultAsync(m => m.Id == id, ct) is { } registered)
            return registered;
        try
        {
            var checkpoint = await checkpoints.FindAsync(db, id, ct) ?? throw ModelNotFound(id);
            if (export)
                await checkpoints.ExportAsync(checkpoint, ct);
            return checkpoint.Model;
        }
        catch (CheckpointUnavailableException ex)
        {
            throw new OpenAiException(404, ex.Message, "model", "model_not_found");
        }
    }

    internal static string TokenText(ModelHost.Lease lease, int id) =>
        lease.Model.Tokenizer is { } tok ? Encoding.UTF8.GetString(tok.TokenBytes(id)) : $"<|token:{id}|>";

    internal static byte[] TokenBytes(ModelHost.Lease lease, int id) => lease.Model.Tokenizer?.TokenBytes(id) ?? [];

    internal static JsonObject Usage(int prompt, int completion) =>
        new() { ["prompt_tokens"] = prompt, ["completion_tokens"] = completion, ["total_tokens"] = prompt + completion };

    internal static void Record(Stopwatch clock, int prompt, int completion)
    {
        FineTuningTelemetry.GenerationLatency.Record(clock.Elapsed.TotalSeconds);
        FineTuningTelemetry.GeneratedTokens.Add(prompt, new KeyValuePair<string, object?>("kind", "prompt"));
        FineTuningTelemetry.GeneratedTokens.Add(completion, new KeyValuePair<string, object?>("kind", "completion"));
    }

    internal static async Task StartSseAsync(HttpContext http)
    {
        http.Response.ContentType = "text/event-stream";
        http.Response.Headers.CacheControl = "no-cache";
        await http.Response.StartAsync();
    }

    internal static async Task WriteSseAsync(HttpContext http, JsonNode data, CancellationToken ct)
    {
        await http.Response.WriteAsync("data: " + data.ToJsonString() + "\n\n", ct);
        await http.Response.Body.FlushAsync(ct);
    }

    /// <summary>The error as JSON, or, when an event stream already started, as a final SSE event (the status is already sent).</summary>
    internal static async Task<IResult> ErrorAsync(HttpContext http, OpenAiException ex)
    {
        if (!http.Response.HasStarted)
            return ex.ToResult();
        await http.Response.WriteAsync("data: " + new JsonObject { ["error"] = new JsonObject { ["message"] = ex.Message, ["type"] = ex.Type, ["param"] = ex.Param, ["code"] = ex.Code } }.ToJsonString() + "\n\n");
        return Results.Empty;
    }
}

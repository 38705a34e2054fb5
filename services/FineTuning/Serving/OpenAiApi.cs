using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AspireTune.FineTuning.Curation;
using AspireTune.FineTuning.Data;
using AspireTune.Engine.Generation;
using AspireTune.ServiceDefaults.Security;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;

using static AspireTune.FineTuning.Serving.OpenAiRequest;

namespace AspireTune.FineTuning.Serving;

/// <summary>
/// The OpenAI-compatible API over registered models: <c>GET /v1/models</c>, <c>POST /v1/chat/completions</c>
/// (SSE streaming, usage, stop, temperature, top_p, max_tokens, seed, logprobs) and <c>POST /v1/completions</c>
/// (string or token-id prompts, echo, logprobs, <c>max_tokens: 0</c> for scoring). Bodies are parsed by hand so
/// every error, malformed JSON included, comes back in the OpenAI error shape that SDKs and harnesses read.
/// </summary>
public static class OpenAiApi
{
    private const int DefaultChatMaxTokens = 256;
    private const int DefaultCompletionMaxTokens = 16;

    public static IEndpointRouteBuilder MapOpenAiApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1").WithTags("OpenAI-compatible serving").RequireAuthorization(Policies.Reader);
        group.MapGet("/models", ListModelsAsync);
        group.MapGet("/models/{id}", GetModelAsync);
        group.MapPost("/chat/completions", ChatAsync);
        group.MapPost("/completions", CompletionsAsync);
        group.MapPost("/tokenize", TokenizeAsync);
        return app;
    }

    public static async Task<IResult> ListModelsAsync(FineTuningDbContext db, CancellationToken ct)
    {
        var models = await db.Models.AsNoTracking().ToListAsync(ct);
        var data = new JsonArray(models.OrderBy(m => m.CreatedAt).Select(m => (JsonNode)ModelObject(m)).ToArray());
        return Results.Json(new JsonObject { ["object"] = "list", ["data"] = data });
    }

    public static async Task<IResult> GetModelAsync(string id, FineTuningDbContext db, CancellationToken ct) =>
        await db.Models.AsNoTracking().FirstOrDefaultAsync(m => m.Id == id, ct) is { } model
            ? Results.Json(ModelObject(model))
            : ModelNotFound(id).ToResult();

    private static JsonObject ModelObject(RegisteredModel m) => new()
    {
        ["id"] = m.Id,
        ["object"] = "model",
        ["created"] = m.CreatedAt.ToUnixTimeSeconds(),
        ["owned_by"] = m.Source == ModelSource.FineTuned ? "aspiretune-fine-tuning" : "aspiretune",
    };

    private static OpenAiException ModelNotFound(string id) =>
        new(404, $"The model '{id}' does not exist. GET /v1/models lists the served models.", "model", "model_not_found");

    // ---------------------------------------------------------------- chat

    public static async Task<IResult> ChatAsync(HttpContext http, FineTuningDbContext db, ModelHost host, IHostEnvironment env, CancellationToken ct)
    {
        try
        {
            var body = await ReadBodyAsync(http.Request, ct);
            var model = await FindModelAsync(db, body, ct);
            var messages = ParseMessages(body);
            var settings = ParseSampling(body, DefaultChatMaxTokens, chat: true);
            if (settings.N != 1)
                throw new OpenAiException(400, "Only n = 1 is supported.", "n");
            var stream = OptionalBool(body, "stream") ?? false;
            var includeUsage = body["stream_options"] is JsonObject so && so["include_usage"]?.GetValueKind() == JsonValueKind.True;
            if (!model.HasTokenizer)
                throw new OpenAiException(400, $"The model '{model.Id}' has no tokenizer, so chat messages cannot be encoded; use /v1/completions with a token-id prompt.", "model", "model_without_tokenizer");

            using var activity = FineTuningTelemetry.ActivitySource.StartActivity("chat completion");
            activity?.SetTag("gen_ai.request.model", model.Id);
            if (env.IsDevelopment())
                activity?.SetTag("gen_ai.prompt", ChatTemplate.RenderPrompt(messages));
            var clock = Stopwatch.StartNew();
            using var lease = await host.AcquireAsync(model, ct);
            var promptIds = ChatPromptIds(lease, messages);
            CheckContext(lease, promptIds.Count, settings.MaxTokens, "messages");
            var options = settings.ToOptions();
            var id = "chatcmpl-" + Guid.NewGuid().ToString("N");
            var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

            if (stream)
            {
                await StartSseAsync(http);
                await WriteSseAsync(http, ChatChunk(id, created, model.Id, new JsonObject { ["role"] = "assistant", ["content"] = "" }, null, null), ct);
                var count = 0;
                var finish = FinishReasons.Length;
                await foreach (var token in lease.Generator.StreamAsync(promptIds, options, ct))
                {
                    count++;
                    if (token.Text.Length > 0)
                        await WriteSseAsync(http, ChatChunk(id, created, model.Id, new JsonObject { ["content"] = token.Text },
                            settings.Logprobs ? ChatLogprobs(lease, [token]) : null, null), ct);
                }
                finish = count < settings.MaxTokens && count < lease.Model.Config.MaxPositions - promptIds.Count ? FinishReasons.Stop : FinishReasons.Length;
                await WriteSseAsync(http, ChatChunk(id, created, model.Id, new JsonObject(), null, finish), ct);
                if (includeUsage)
                {
                    var usageChunk = ChatChunk(id, created, model.Id, null, null, null);
                    usageChunk["choices"] = new JsonArray();
                    usageChunk["usage"] = Usage(promptIds.Count, count);
                    await WriteSseAsync(http, usageChunk, ct);
                }
                await http.Response.WriteAsync("data: [DONE]\n\n", ct);
                Record(clock, promptIds.Count, count);
                return Results.Empty;
            }

            var result = lease.Generator.Generate(promptIds, options, ct);
            Record(clock, promptIds.Count, result.Tokens.Count);
            if (env.IsDevelopment())
                activity?.SetTag("gen_ai.completion", result.Text);
            var choice = new JsonObject
            {
                ["index"] = 0,
                ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = result.Text, ["refusal"] = null },
                ["logprobs"] = settings.Logprobs ? ChatLogprobs(lease, result.Tokens) : null,
                ["finish_reason"] = result.FinishReason,
            };
            return Results.Json(new JsonObject
            {
                ["id"] = id,
                ["object"] = "chat.completion",
                ["created"] = created,
                ["model"] = model.Id,
                ["choices"] = new JsonArray(choice),
                ["usage"] = Usage(promptIds.Count, result.Tokens.Count),
                ["system_fingerprint"] = "aspiretune",
            });
        }
        catch (OpenAiException ex)
        {
            return await ErrorAsync(http, ex);
        }
    }

    private static JsonObject ChatChunk(string id, long created, string model, JsonObject? delta, JsonNode? logprobs, string? finish)
    {
        var chunk = new JsonObject { ["id"] = id, ["object"] = "chat.completion.chunk", ["created"] = created, ["model"] = model, ["system_fingerprint"] = "aspiretune" };
        if (delta is not null)
            chunk["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = delta, ["logprobs"] = logprobs, ["finish_reason"] = finish });
        return chunk;
    }

    private static JsonObject ChatLogprobs(ModelHost.Lease lease, IEnumerable<GeneratedToken> tokens) => new()
    {
        ["content"] = new JsonArray(tokens.Select(t => (JsonNode)new JsonObject
        {
            ["token"] = TokenText(lease, t.Id),
            ["logprob"] = t.Logprob,
            ["bytes"] = new JsonArray(TokenBytes(lease, t.Id).Select(b => (JsonNode)(int)b).ToArray()),
            ["top_logprobs"] = new JsonArray((t.TopLogprobs ?? []).Select(a => (JsonNode)new JsonObject
            {
                ["token"] = TokenText(lease, a.Id),
                ["logprob"] = a.Logprob,
                ["bytes"] = new JsonArray(TokenBytes(lease, a.Id).Select(b => (JsonNode)(int)b).ToArray()),
            }).ToArray()),
        }).ToArray()),
    };

    private static List<ChatMessage> ParseMessages(JsonObject body)
    {
        if (body["messages"] is not JsonArray array)
            throw new OpenAiException(400, "'messages' is required and must be an array of {role, content}.", "messages");
        if (array.Count == 0)
            throw new OpenAiException(400, "'messages' is empty: at least one message is needed.", "messages");
        var list = new List<ChatMessage>();
        for (var i = 0; i < array.Count; i++)
        {
            if (array[i] is not JsonObject message)
                throw new OpenAiException(400, $"messages[{i}] must be an object.", $"messages[{i}]");
            var role = message["role"]?.GetValueKind() == JsonValueKind.String ? message["role"]!.GetValue<string>() : null;
            // developer is the newer name of system in the OpenAI API.
            role = role == "developer" ? "system" : role;
            if (role is not ("system" or "user" or "assistant"))
                throw new OpenAiException(400, $"messages[{i}].role must be system, developer, user or assistant.", $"messages[{i}].role");
            var content = message["content"] switch
            {
                JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
                JsonArray parts => string.Concat(parts.Select((p, j) => p is JsonObject { } o && o["type"]?.ToString() == "text" && o["text"]?.GetValueKind() == JsonValueKind.String
                    ? o["text"]!.GetValue<string>()
                    : throw new OpenAiException(400, $"messages[{i}].content[{j}] is not a text part; only text is supported.", $"messages[{i}].content"))),
                null when role == "assistant" => "",
                _ => throw new OpenAiException(400, $"messages[{i}].content must be a string or an array of text parts.", $"messages[{i}].content"),
            };
            list.Add(new ChatMessage(role, content));
        }
        return list;
    }

    /// <summary>The token ids a chat request's messages become: the one place chat prompts are encoded (chat and tokenize).</summary>
    private static IReadOnlyList<int> ChatPromptIds(ModelHost.Lease lease, IEnumerable<ChatMessage> messages) =>
        lease.Generator.EncodePrompt(ChatTemplate.RenderPrompt(messages));

    // ---------------------------------------------------------------- tokenize

    /// <summary>
    /// <c>POST /v1/tokenize</c> in the shape of vLLM's route: <c>{"model", "messages"}</c> (encoded exactly as a chat
    /// completion would be) or <c>{"model", "prompt", "add_special_tokens"?}</c> -> <c>{"count", "max_model_len",
    /// "tokens", "eos_token_id"}</c>. Callers size prompts to the context with it, and build token-id prompts for scoring.
    /// </summary>
    public static async Task<IResult> TokenizeAsync(HttpContext http, FineTuningDbContext db, ModelHost host, CancellationToken ct)
    {
        try
        {
            var body = await ReadBodyAsync(http.Request, ct);
            var model = await FindModelAsync(db, body, ct);
            if (!model.HasTokenizer)
                throw new OpenAiException(400, $"The model '{model.Id}' has no tokenizer.", "model", "model_without_tokenizer");
            var messages = body.ContainsKey("messages") ? ParseMessages(body) : null;
            var prompt = messages is null
                ? body["prompt"] is JsonValue p && p.GetValueKind() == JsonValueKind.String ? p.GetValue<string>() : throw new OpenAiException(400, "Send 'messages' (as for chat) or 'prompt' (a string).", "prompt")
                : null;
            var special = OptionalBool(body, "add_special_tokens") ?? true;
            using var lease = await host.AcquireAsync(model, ct);
            var tokenizer = lease.Model.Tokenizer!;
            IReadOnlyList<int> ids = messages is not null ? ChatPromptIds(lease, messages) : special ? lease.Generator.EncodePrompt(prompt!) : tokenizer.Encode(prompt!);
            return Results.Json(new JsonObject
            {
                ["count"] = ids.Count,
                ["max_model_len"] = lease.Model.Config.MaxPositions,
                ["tokens"] = new JsonArray(ids.Select(i => (JsonNode)i).ToArray()),
                ["eos_token_id"] = tokenizer.EosTokenId,
            });
        }
        catch (OpenAiException ex)
        {
            return ex.ToResult();
        }
    }

    // ---------------------------------------------------------------- completions

    public static async Task<IResult> CompletionsAsync(HttpContext http, FineTuningDbContext db, ModelHost host, CancellationToken ct)
    {
        try
        {
            var body = await ReadBodyAsync(http.Request, ct);
            var model = await FindModelAsync(db, body, ct);
            var settings = ParseSampling(body, DefaultCompletionMaxTokens, chat: false);
            var echo = OptionalBool(body, "echo") ?? false;
            var stream = OptionalBool(body, "stream") ?? false;
            var prompts = ParsePrompts(body, model.HasTokenizer);
            if (stream && (prompts.Count > 1 || echo))
                throw new OpenAiException(400, "Streaming supports one prompt without echo.", "stream");

            var clock = Stopwatch.StartNew();
            using var lease = await host.AcquireAsync(model, ct);
            var id = "cmpl-" + Guid.NewGuid().ToString("N");
            var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            var encoded = prompts.Select(p => p.Ids ?? lease.Generator.EncodePrompt(p.Text!)).ToList();
            foreach (var ids in encoded)
            {
                if (ids.Count == 0)
                    throw new OpenAiException(400, "The prompt is empty: at least one token is needed.", "prompt");
                if (ids.FirstOrDefault(i => i < 0 || i >= lease.Model.Config.VocabSize) is var bad && (bad < 0 || bad >= lease.Model.Config.VocabSize))
                    throw new OpenAiException(400, $"Token id {bad} is outside the model's vocabulary of {lease.Model.Config.VocabSize}.", "prompt");
                CheckContext(lease, ids.Count, settings.MaxTokens, "prompt");
            }
            var options = settings.ToOptions();

            if (stream)
            {
                await StartSseAsync(http);
                var count = 0;
                await foreach (var token in lease.Generator.StreamAsync(encoded[0], options, ct))
                {
                    count++;
                    await WriteSseAsync(http, new JsonObject
                    {
                        ["id"] = id, ["object"] = "text_completion", ["created"] = created, ["model"] = model.Id,
                        ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["text"] = token.Text, ["logprobs"] = null, ["finish_reason"] = null, ["token_ids"] = new JsonArray(token.Id) }),
                    }, ct);
                }
                var finish = count < settings.MaxTokens && count < lease.Model.Config.MaxPositions - encoded[0].Count ? FinishReasons.Stop : FinishReasons.Length;
                await WriteSseAsync(http, new JsonObject
                {
                    ["id"] = id, ["object"] = "text_completion", ["created"] = created, ["model"] = model.Id,
                    ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["text"] = "", ["logprobs"] = null, ["finish_reason"] = finish }),
                }, ct);
                await http.Response.WriteAsync("data: [DONE]\n\n", ct);
                Record(clock, encoded[0].Count, count);
                return Results.Empty;
            }

            var choices = new JsonArray();
            int promptTokens = 0, completionTokens = 0;
            for (var p = 0; p < encoded.Count; p++)
            {
                var ids = encoded[p];
                promptTokens += ids.Count;
                var result = settings.MaxTokens == 0 ? null : lease.Generator.Generate(ids, options, ct);
                var generated = result?.Tokens ?? [];
                completionTokens += generated.Count;
                var text = new StringBuilder();
                var logprobs = settings.CompletionLogprobs is { } top ? new CompletionLogprobs() : null;
                if (echo)
                {
                    var promptText = prompts[p].Text ?? (model.HasTokenizer ? lease.Model.Tokenizer!.Decode(ids) : "");
                    if (logprobs is not null)
                    {
                        var scores = lease.Generator.Score(ids);
                        for (var i = 0; i < ids.Count; i++)
                            logprobs.Add(TokenText(lease, ids[i]), scores.Logprobs[i], null, text.Length + logprobs.TextLength(i, lease, ids));
                    }
                    text.Append(promptText);
                }
                var offset = text.Length;
                foreach (var token in generated)
                {
                    logprobs?.Add(TokenText(lease, token.Id), token.Logprob, token.TopLogprobs?.ToDictionary(a => TokenText(lease, a.Id), a => a.Logprob, StringComparer.Ordinal), offset);
                    text.Append(token.Text);
                    offset += token.Text.Length;
                }
                choices.Add(new JsonObject
                {
                    ["index"] = p,
                    ["text"] = text.ToString(),
                    ["logprobs"] = logprobs?.ToJson(),
                    ["finish_reason"] = result?.FinishReason ?? FinishReasons.Length,
                    ["token_ids"] = new JsonArray(generated.Select(t => (JsonNode)t.Id).ToArray()),
                });
            }
            Record(clock, promptTokens, completionTokens);
            return Results.Json(new JsonObject
            {
                ["id"] = id,
                ["object"] = "text_completion",
                ["created"] = created,
                ["model"] = model.Id,
                ["choices"] = choices,
                ["usage"] = Usage(promptTokens, completionTokens),
                ["system_fingerprint"] = "aspiretune",
            });
        }
        catch (OpenAiException ex)
        {
            return await ErrorAsync(http, ex);
        }
    }

    /// <summary>The legacy completions <c>logprobs</c> object: parallel arrays per token.</summary>
    private sealed class CompletionLogprobs
    {
        private readonly JsonArray _tokens = [], _logprobs = [], _top = [], _offsets = [];
        private int _echoOffset;

        public void Add(string token, double? logprob, Dictionary<string, double>? top, int offset)
        {
            _tokens.Add(token);
            _logprobs.Add(logprob);
            _top.Add(top is null ? null : new JsonObject(top.Select(t => KeyValuePair.Create(t.Key, (JsonNode?)t.Value))));
            _offsets.Add(offset);
        }

        /// <summary>Offset of echoed prompt token i: the text of the tokens before it.</summary>
        public int TextLength(int i, ModelHost.Lease lease, IReadOnlyList<int> ids)
        {
            if (i == 0)
                _echoOffset = 0;
            else
                _echoOffset += TokenText(lease, ids[i - 1]).Length;
            return _echoOffset;
        }

        public JsonObject ToJson() => new() { ["tokens"] = _tokens, ["token_logprobs"] = _logprobs, ["top_logprobs"] = _top, ["text_offset"] = _offsets };
    }

    private sealed record Prompt(string? Text, IReadOnlyList<int>? Ids);

    private static List<Prompt> ParsePrompts(JsonObject body, bool hasTokenizer)
    {
        var node = body["prompt"] ?? throw new OpenAiException(400, "'prompt' is required: a string, an array of token ids, or an array of either.", "prompt");
        var prompts = node switch
        {
            JsonValue v when v.GetValueKind() == JsonValueKind.String => [new Prompt(v.GetValue<string>(), null)],
            JsonArray a when a.Count > 0 && a.All(x => x?.GetValueKind() == JsonValueKind.Number) => [new Prompt(null, TokenIds(a))],
            JsonArray a when a.Count > 0 && a.All(x => x?.GetValueKind() == JsonValueKind.String) => a.Select(x => new Prompt(x!.GetValue<string>(), null)).ToList(),
            JsonArray a when a.Count > 0 && a.All(x => x is JsonArray inner && inner.All(y => y?.GetValueKind() == JsonValueKind.Number)) => a.Select(x => new Prompt(null, TokenIds((JsonArray)x!))).ToList(),
            _ => throw new OpenAiException(400, "'prompt' must be a string, an array of token ids, an array of strings or an array of token-id arrays.", "prompt"),
        };
        if (!hasTokenizer && prompts.Any(p => p.Text is not null))
            throw new OpenAiException(400, "This model has no tokenizer: send the prompt as an array of token ids.", "prompt", "model_without_tokenizer");
        return prompts;
    }

    private static List<int> TokenIds(JsonArray array) =>
        array.Select((x, i) => x!.AsValue().TryGetValue<int>(out var id) ? id : throw new OpenAiException(400, $"prompt[{i}] is not a whole token id.", "prompt")).ToList();

    // ---------------------------------------------------------------- shared

    private sealed record Sampling(int MaxTokens, double Temperature, double TopP, IReadOnlyList<string> Stop, long? Seed, int N, bool Logprobs, int TopLogprobs, int? CompletionLogprobs)
    {
        public GenerationOptions ToOptions() => new()
        {
            MaxTokens = MaxTokens,
            Temperature = Temperature,
            TopP = TopP,
            Stop = Stop,
            Seed = Seed,
            TopLogprobs = CompletionLogprobs ?? TopLogprobs,
        };
    }

    private static Sampling ParseSampling(JsonObject body, int defaultMaxTokens, bool chat)
    {
        var maxTokens = OptionalInt(body, chat && body.ContainsKey("max_completion_tokens") ? "max_completion_tokens" : "max_tokens", 0, 1_000_000) ?? defaultMaxTokens;
        if (chat && maxTokens == 0)
            throw new OpenAiException(400, "max_tokens must be at least 1 for chat completions; use /v1/completions with echo to score a prompt.", "max_tokens");
        var temperature = OptionalDouble(body, "temperature", 0, 2) ?? 1.0;
        var topP = OptionalDouble(body, "top_p", 0, 1) ?? 1.0;
        if (topP == 0)
            throw new OpenAiException(400, "top_p must be greater than 0.", "top_p");
        var stop = body["stop"] switch
        {
            null => [],
            JsonValue v when v.GetValueKind() == JsonValueKind.String => [v.GetValue<string>()],
            JsonValue v when v.GetValueKind() == JsonValueKind.Null => [],
            JsonArray a when a.Count <= 4 && a.All(x => x?.GetValueKind() == JsonValueKind.String) => a.Select(x => x!.GetValue<string>()).ToList(),
            _ => throw new OpenAiException(400, "'stop' must be a string or an array of up to 4 strings.", "stop"),
        };
        if (stop.Any(s => s.Length == 0))
            throw new OpenAiException(400, "Stop sequences must not be empty.", "stop");
        var seed = body["seed"] is null || body["seed"]!.GetValueKind() == JsonValueKind.Null ? (long?)null
            : body["seed"]!.AsValue().TryGetValue<long>(out var s) ? s : throw new OpenAiException(400, "'seed' must be an integer.", "seed");
        var n = OptionalInt(body, "n", 1, 128) ?? 1;
        bool logprobs = false;
        int topLogprobs = 0;
        int? completionLogprobs = null;
        if (chat)
        {
            logprobs = OptionalBool(body, "logprobs") ?? false;
            topLogprobs = OptionalInt(body, "top_logprobs", 0, 20) ?? 0;
            if (topLogprobs > 0 && !logprobs)
                throw new OpenAiException(400, "top_logprobs requires logprobs: true.", "top_logprobs");
        }
        else
            completionLogprobs = OptionalInt(body, "logprobs", 0, 20);
        return new Sampling(maxTokens, temperature, topP, stop, seed, n, logprobs, topLogprobs, completionLogprobs);
    }

    private static void CheckContext(ModelHost.Lease lease, int promptTokens, int maxTokens, string param)
    {
        var context = lease.Model.Config.MaxPositions;
        if (promptTokens > context)
            throw new OpenAiException(400, $"The prompt is {promptTokens} tokens; this model's context is {context} tokens.", param, "context_length_exceeded");
        if (promptTokens + maxTokens > context && maxTokens > 0)
            throw new OpenAiException(400, $"The prompt ({promptTokens} tokens) plus max_tokens ({maxTokens}) exceeds this model's context of {context} tokens.", "max_tokens", "context_length_exceeded");
    }

    private static async Task<RegisteredModel> FindModelAsync(FineTuningDbContext db, JsonObject body, CancellationToken ct)
    {
        if (body["model"] is not JsonValue v || v.GetValueKind() != JsonValueKind.String || string.IsNullOrWhiteSpace(v.GetValue<string>()))
            throw new OpenAiException(400, "'model' is required: the id of a served model (GET /v1/models).", "model");
        var id = v.GetValue<string>();
        return await db.Models.AsNoTracking().FirstOrDefaultAsync(m => m.Id == id, ct) ?? throw ModelNotFound(id);
    }

    private static string TokenText(ModelHost.Lease lease, int id) =>
        lease.Model.Tokenizer is { } tok ? Encoding.UTF8.GetString(tok.TokenBytes(id)) : $"<|token:{id}|>";

    private static byte[] TokenBytes(ModelHost.Lease lease, int id) => lease.Model.Tokenizer?.TokenBytes(id) ?? [];

    private static JsonObject Usage(int prompt, int completion) =>
        new() { ["prompt_tokens"] = prompt, ["completion_tokens"] = completion, ["total_tokens"] = prompt + completion };

    private static void Record(Stopwatch clock, int prompt, int completion)
    {
        FineTuningTelemetry.GenerationLatency.Record(clock.Elapsed.TotalSeconds);
        FineTuningTelemetry.GeneratedTokens.Add(prompt, new KeyValuePair<string, object?>("kind", "prompt"));
        FineTuningTelemetry.GeneratedTokens.Add(completion, new KeyValuePair<string, object?>("kind", "completion"));
    }

    private static async Task StartSseAsync(HttpContext http)
    {
        http.Response.ContentType = "text/event-stream";
        http.Response.Headers.CacheControl = "no-cache";
        await http.Response.StartAsync();
    }

    private static async Task WriteSseAsync(HttpContext http, JsonNode data, CancellationToken ct)
    {
        await http.Response.WriteAsync("data: " + data.ToJsonString() + "\n\n", ct);
        await http.Response.Body.FlushAsync(ct);
    }

    /// <summary>The error as JSON, or, when an event stream already started, as a final SSE event (the status is already sent).</summary>
    private static async Task<IResult> ErrorAsync(HttpContext http, OpenAiException ex)
    {
        if (!http.Response.HasStarted)
            return ex.ToResult();
        await http.Response.WriteAsync("data: " + new JsonObject { ["error"] = new JsonObject { ["message"] = ex.Message, ["type"] = ex.Type, ["param"] = ex.Param, ["code"] = ex.Code } }.ToJsonString() + "\n\n");
        return Results.Empty;
    }
}

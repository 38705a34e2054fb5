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

using static AspireTune.FineTuning.Serving.OpenAiApi;
using static AspireTune.FineTuning.Serving.OpenAiSampling;
using static AspireTune.FineTuning.Serving.OpenAiRequest;

namespace AspireTune.FineTuning.Serving;

/// <summary><c>POST /v1/chat/completions</c> over the registered models.</summary>
public static class ChatCompletionsApi
{
    private const int DefaultMaxTokens = 256;

    public static async Task<IResult> ChatAsync(HttpContext http, FineTuningDbContext db, ModelHost host, IHostEnvironment env, CancellationToken ct)
    {
        try
        {
            var body = await ReadBodyAsync(http.Request, ct);
            var model = await FindModelAsync(db, body, ct);
            var messages = ParseMessages(body);
            var settings = ParseSampling(body, DefaultMaxTokens, chat: true);
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
            var promptIds = lease.Generator.EncodePrompt(ChatTemplate.RenderPrompt(messages));
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
}

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
using static AspireTune.ServiceDefaults.OpenAi.OpenAiRequest;

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
            var structured = StructuredOutput.Parse(body);
            var stream = OptionalBool(body, "stream") ?? false;
            if (stream && settings.N > 1)
                throw new OpenAiException(400, "Streaming returns one choice here; use n = 1 with stream, or n > 1 without.", "n");
            var includeUsage = body["stream_options"] is JsonObject so && so["include_usage"]?.GetValueKind() == JsonValueKind.True;
            if (!model.HasTokenizer)
                throw new OpenAiException(400, $"The model '{model.Id}' has no tokenizer, so chat messages cannot be encoded; use /v1/completions with a token-id prompt.", "model", "model_without_tokenizer");

            var prompt = ChatTemplate.RenderPrompt(messages, structured.Tools);
            using var activity = FineTuningTelemetry.ActivitySource.StartActivity("chat completion");
            activity?.SetTag("gen_ai.request.model", model.Id);
            if (env.IsDevelopment())
                activity?.SetTag("gen_ai.prompt", prompt);
            var clock = Stopwatch.StartNew();
            using var lease = await host.AcquireAsync(model, ct);
            var promptIds = lease.Generator.EncodePrompt(prompt); // as /v1/tokenize counts it (TokenizeApi)
            CheckContext(lease, promptIds.Count, settings.MaxTokens, "messages");
            CheckLogitBias(settings, lease.Model.Config.VocabSize);
            var constraint = structured.ConstraintFor(lease.Model);
            var id = "chatcmpl-" + Guid.NewGuid().ToString("N");
            var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

            // A tool call is known only once generated: with tools, a stream carries the finished message.
            if (stream && !structured.CallsTools)
            {
                await StartSseAsync(http);
                await WriteSseAsync(http, ChatChunk(id, created, model.Id, new JsonObject { ["role"] = "assistant", ["content"] = "" }, null, null), ct);
                var count = 0;
                await foreach (var token in lease.Generator.StreamAsync(promptIds, settings.ToOptions() with { Constraint = constraint }, ct))
                {
                    count++;
                    if (token.Text.Length > 0)
                        await WriteSseAsync(http, ChatChunk(id, created, model.Id, new JsonObject { ["content"] = token.Text },
                            settings.Logprobs ? ChatLogprobs(lease, [token]) : null, null), ct);
                }
                var finish = count < settings.MaxTokens && count < lease.Model.Config.MaxPositions - promptIds.Count ? FinishReasons.Stop : FinishReasons.Length;
                await WriteSseAsync(http, ChatChunk(id, created, model.Id, new JsonObject(), null, finish), ct);
                await EndStreamAsync(http, id, created, model.Id, includeUsage, promptIds.Count, count, ct);
                Record(clock, promptIds.Count, count);
                return Results.Empty;
            }

            var choices = new JsonArray();
            var completionTokens = 0;
            for (var n = 0; n < settings.N; n++)
            {
                var result = lease.Generator.Generate(promptIds, settings.ToOptions(n) with { Constraint = constraint }, ct);
                completionTokens += result.Tokens.Count;
                if (env.IsDevelopment())
                    activity?.SetTag($"gen_ai.completion.{n}", result.Text);
                var (message, finish) = structured.ToMessage(result.Text, result.FinishReason);
                choices.Add(new JsonObject
                {
                    ["index"] = n,
                    ["message"] = message,
                    ["logprobs"] = settings.Logprobs ? ChatLogprobs(lease, result.Tokens) : null,
                    ["finish_reason"] = finish,
                });
            }
            Record(clock, promptIds.Count, completionTokens);
            if (stream)
            {
                var choice = choices[0]!.AsObject();
                var message = choice["message"]!.AsObject();
                var delta = new JsonObject { ["role"] = "assistant", ["content"] = message["content"]?.DeepClone() };
                if (message["tool_calls"] is JsonArray calls)
                    delta["tool_calls"] = new JsonArray(calls.Select(c => (JsonNode)new JsonObject
                    {
                        ["index"] = 0, ["id"] = c!["id"]!.DeepClone(), ["type"] = "function", ["function"] = c["function"]!.DeepClone(),
                    }).ToArray());
                await StartSseAsync(http);
                await WriteSseAsync(http, ChatChunk(id, created, model.Id, delta, null, null), ct);
                await WriteSseAsync(http, ChatChunk(id, created, model.Id, new JsonObject(), null, choice["finish_reason"]!.GetValue<string>()), ct);
                await EndStreamAsync(http, id, created, model.Id, includeUsage, promptIds.Count, completionTokens, ct);
                return Results.Empty;
            }
            return Results.Json(new JsonObject
            {
                ["id"] = id,
                ["object"] = "chat.completion",
                ["created"] = created,
                ["model"] = model.Id,
                ["choices"] = choices,
                ["usage"] = Usage(promptIds.Count, completionTokens),
                ["system_fingerprint"] = "aspiretune",
            });
        }
        catch (OpenAiException ex)
        {
            return await ErrorAsync(http, ex);
        }
    }

    private static async Task EndStreamAsync(HttpContext http, string id, long created, string model, bool includeUsage, int promptTokens, int completionTokens, CancellationToken ct)
    {
        if (includeUsage)
        {
            var usageChunk = ChatChunk(id, created, model, null, null, null);
            usageChunk["choices"] = new JsonArray();
            usageChunk["usage"] = Usage(promptTokens, completionTokens);
            await WriteSseAsync(http, usageChunk, ct);
        }
        await http.Response.WriteAsync("data: [DONE]\n\n", ct);
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

    internal static List<ChatMessage> ParseMessages(JsonObject body)
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
            if (role is not ("system" or "user" or "assistant" or "tool"))
                throw new OpenAiException(400, $"messages[{i}].role must be system, developer, user, assistant or tool.", $"messages[{i}].role");
            var content = message["content"] switch
            {
                JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
                JsonArray parts => string.Concat(parts.Select((p, j) => p is JsonObject { } o && o["type"]?.ToString() == "text" && o["text"]?.GetValueKind() == JsonValueKind.String
                    ? o["text"]!.GetValue<string>()
                    : throw new OpenAiException(400, $"messages[{i}].content[{j}] is not a text part; only text is supported.", $"messages[{i}].content"))),
                null when role == "assistant" => "",
                _ => throw new OpenAiException(400, $"messages[{i}].content must be a string or an array of text parts.", $"messages[{i}].content"),
            };
            // A past tool call is shown to the model as it would have written it.
            if (role == "assistant" && message["tool_calls"] is JsonArray calls)
                content += string.Concat(calls.Select((c, j) => c?["function"] is JsonObject f && f["name"]?.GetValueKind() == JsonValueKind.String
                        && f["arguments"]?.GetValueKind() == JsonValueKind.String && TryParse(f["arguments"]!.GetValue<string>()) is JsonObject args
                    ? StructuredOutput.ToolCallTrigger + new JsonObject { ["name"] = f["name"]!.GetValue<string>(), ["arguments"] = args }.ToJsonString()
                    : throw new OpenAiException(400, $"messages[{i}].tool_calls[{j}] must be {{\"type\":\"function\",\"function\":{{\"name\",\"arguments\": a JSON object as a string}}}}.", $"messages[{i}].tool_calls")));
            list.Add(new ChatMessage(role, content));
        }
        return list;
    }

    private static JsonNode? TryParse(string json)
    {
        try
        {
            return JsonNode.Parse(json);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}

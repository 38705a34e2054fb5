using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AspireTune.FineTuning.Curation;
using AspireTune.FineTuning.Data;
using AspireTune.FineTuning.Registry;
using AspireTune.FineTuning.Serving.Templates;
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

    public static async Task<IResult> ChatAsync(HttpContext http, FineTuningDbContext db, ModelHost host, ModelRegistry registry, CheckpointModels checkpoints, IHostEnvironment env, CancellationToken ct)
    {
        try
        {
            var body = await ReadBodyAsync(http.Request, ct);
            var model = await FindModelAsync(db, checkpoints, body, ct);
            var messages = ParseMessages(body);
            var settings = ParseSampling(body, DefaultMaxTokens, chat: true);
            var template = TemplateFor(registry, model);
            // Calls are written and read in the form the model's template shows them (its training's form).
            var structured = StructuredOutput.Parse(body, body.ContainsKey("tools") ? template.CallFormat : null);
            var stream = OptionalBool(body, "stream") ?? false;
            var includeUsage = IncludeUsage(body);
            if (!model.HasTokenizer)
                throw new OpenAiException(400, $"The model '{model.Id}' has no tokenizer, so chat messages cannot be encoded; use /v1/completions with a token-id prompt.", "model", "model_without_tokenizer");

            var prompt = RenderPrompt(template, messages, structured.Tools);
            using var activity = FineTuningTelemetry.ActivitySource.StartActivity("chat completion");
            activity?.SetTag("gen_ai.request.model", model.Id);
            if (env.IsDevelopment())
                activity?.SetTag("gen_ai.prompt", prompt);
            var clock = Stopwatch.StartNew();
            using var lease = await host.AcquireAsync(model, ct);
            settings = settings.WithDefaults(lease.Model.Generation); // what the request leaves out, as generation_config.json has it
            var promptIds = lease.Generator.EncodePrompt(prompt); // as /v1/tokenize counts it (TokenizeApi)
            CheckContext(lease, promptIds.Count, settings.MaxTokens, "messages");
            CheckLogitBias(settings, lease.Model.Config.VocabSize);
            var constraint = structured.ConstraintFor(lease.Model);
            var id = "chatcmpl-" + Guid.NewGuid().ToString("N");
            var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

            // A tool call is known only once generated: with tools, a stream carries the finished messages.
            if (stream && !structured.CallsTools)
            {
                await StartSseAsync(http);
                var requests = Enumerable.Range(0, settings.N).Select(n => new ChoiceRequest(n, promptIds, settings.ToOptions(n) with { Constraint = constraint })).ToList();
                // Each choice opens with its role, then its content chunks interleave with the others' as they are decoded.
                foreach (var request in requests)
                    await WriteSseAsync(http, ChatChunk(id, created, model.Id, new JsonObject { ["role"] = "assistant", ["content"] = "" }, null, null, request.Index), ct);
                var count = 0;
                await foreach (var piece in StreamedChoices.StreamAsync(lease.Generator, requests, ct))
                {
                    if (piece.Token is not { } token)
                    {
                        await WriteSseAsync(http, ChatChunk(id, created, model.Id, new JsonObject(), null, piece.FinishReason, piece.Index), ct);
                        continue;
                    }
                    count++;
                    if (token.Text.Length > 0)
                        await WriteSseAsync(http, ChatChunk(id, created, model.Id, new JsonObject { ["content"] = token.Text },
                            settings.Logprobs ? ChatLogprobs(lease, [token]) : null, null, piece.Index), ct);
                }
                await EndStreamAsync(http, id, created, model.Id, includeUsage, promptIds.Count, count, ct);
                Record(clock, promptIds.Count, count);
                return Results.Empty;
            }

            var choices = new JsonArray();
            var completionTokens = 0;
            // The n choices are decoded together.
            var results = await Task.WhenAll(Enumerable.Range(0, settings.N)
                .Select(n => lease.Generator.GenerateAsync(promptIds, settings.ToOptions(n) with { Constraint = constraint }, ct)));
            for (var n = 0; n < settings.N; n++)
            {
                var result = results[n];
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
                await StartSseAsync(http);
                foreach (var choice in choices.Select(c => c!.AsObject()))
                {
                    var index = choice["index"]!.GetValue<int>();
                    var message = choice["message"]!.AsObject();
                    var delta = new JsonObject { ["role"] = "assistant", ["content"] = message["content"]?.DeepClone() };
                    if (message["tool_calls"] is JsonArray calls)
                        delta["tool_calls"] = new JsonArray(calls.Select((c, j) => (JsonNode)new JsonObject
                        {
                            ["index"] = j, ["id"] = c!["id"]!.DeepClone(), ["type"] = "function", ["function"] = c["function"]!.DeepClone(),
                        }).ToArray());
                    await WriteSseAsync(http, ChatChunk(id, created, model.Id, delta, null, null, index), ct);
                    await WriteSseAsync(http, ChatChunk(id, created, model.Id, new JsonObject(), null, choice["finish_reason"]!.GetValue<string>(), index), ct);
                }
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

    private static JsonObject ChatChunk(string id, long created, string model, JsonObject? delta, JsonNode? logprobs, string? finish, int index = 0)
    {
        var chunk = new JsonObject { ["id"] = id, ["object"] = "chat.completion.chunk", ["created"] = created, ["model"] = model, ["system_fingerprint"] = "aspiretune" };
        if (delta is not null)
            chunk["choices"] = new JsonArray(new JsonObject { ["index"] = index, ["delta"] = delta, ["logprobs"] = logprobs, ["finish_reason"] = finish });
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
            // A past tool call goes to the template as a call (a checkpoint's template writes it in the model's own form).
            List<ToolCall>? toolCalls = null;
            if (role == "assistant" && message["tool_calls"] is JsonArray calls)
                toolCalls = [.. calls.Select((c, j) => c?["function"] is JsonObject f && f["name"]?.GetValueKind() == JsonValueKind.String
                        && f["arguments"]?.GetValueKind() == JsonValueKind.String && TryParse(f["arguments"]!.GetValue<string>()) is JsonObject args
                    ? new ToolCall(c["id"]?.GetValueKind() == JsonValueKind.String ? c["id"]!.GetValue<string>() : $"call_{i}_{j}", f["name"]!.GetValue<string>(), args.ToJsonString())
                    : throw new OpenAiException(400, $"messages[{i}].tool_calls[{j}] must be {{\"type\":\"function\",\"function\":{{\"name\",\"arguments\": a JSON object as a string}}}}.", $"messages[{i}].tool_calls"))];
            var toolCallId = role == "tool" && message["tool_call_id"]?.GetValueKind() == JsonValueKind.String ? message["tool_call_id"]!.GetValue<string>() : null;
            list.Add(new ChatMessage(role, content, toolCalls, toolCallId));
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

    /// <summary>The model's chat template (its checkpoint's, or the built-in one); one it cannot parse is a 400 naming <c>messages</c>.</summary>
    internal static ChatTemplate TemplateFor(ModelRegistry registry, RegisteredModel model)
    {
        try
        {
            return ChatTemplate.For(registry.Directory(model));
        }
        catch (TemplateException e)
        {
            throw new OpenAiException(400, e.Message, "messages");
        }
    }

    /// <summary>The template applied to the request; a template error names <c>messages</c>.</summary>
    internal static string RenderPrompt(ChatTemplate template, IReadOnlyList<ChatMessage> messages, IReadOnlyList<JsonObject>? tools)
    {
        try
        {
            return template.RenderPrompt(messages, tools);
        }
        catch (TemplateException e)
        {
            throw new OpenAiException(400, e.Message, "messages");
        }
    }
}

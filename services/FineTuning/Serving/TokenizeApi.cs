using System.Text.Json;
using System.Text.Json.Nodes;
using AspireTune.FineTuning.Data;

using static AspireTune.FineTuning.Serving.OpenAiApi;
using static AspireTune.ServiceDefaults.OpenAi.OpenAiRequest;

namespace AspireTune.FineTuning.Serving;

/// <summary>
/// <c>POST /v1/tokenize</c> in the shape of vLLM's route: <c>{"model", "messages"}</c> (rendered with the chat template
/// and encoded exactly as <c>/v1/chat/completions</c> does without tools) or <c>{"model", "prompt",
/// "add_special_tokens"?}</c> -> <c>{"count", "max_model_len", "tokens", "eos_token_id"}</c>. The Evaluation service
/// fits prompts to the model's context with it and builds token-id prompts to score labels.
/// </summary>
public static class TokenizeApi
{
    public static async Task<IResult> TokenizeAsync(HttpContext http, FineTuningDbContext db, ModelHost host, Registry.ModelRegistry registry, Registry.CheckpointModels checkpoints, CancellationToken ct)
    {
        try
        {
            var body = await ReadBodyAsync(http.Request, ct);
            var model = await FindModelAsync(db, checkpoints, body, ct);
            if (!model.HasTokenizer)
                throw new OpenAiException(400, $"The model '{model.Id}' has no tokenizer.", "model", "model_without_tokenizer");
            var messages = body.ContainsKey("messages") ? ChatCompletionsApi.ParseMessages(body) : null;
            var prompt = messages is not null ? null
                : body["prompt"] is JsonValue p && p.GetValueKind() == JsonValueKind.String ? p.GetValue<string>()
                : throw new OpenAiException(400, "Send 'messages' (as for chat) or 'prompt' (a string).", "prompt");
            var special = OptionalBool(body, "add_special_tokens") ?? true;
            using var lease = await host.AcquireAsync(model, ct);
            var tokenizer = lease.Model.Tokenizer!;
            IReadOnlyList<int> ids = messages is not null ? lease.Generator.EncodePrompt(ChatCompletionsApi.RenderPrompt(ChatCompletionsApi.TemplateFor(registry, model), messages, null))
                : special ? lease.Generator.EncodePrompt(prompt!) : tokenizer.Encode(prompt!);
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
}

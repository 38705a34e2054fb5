using AspireTune.FineTuning.Curation;

namespace AspireTune.FineTuning.Serving;

/// <summary>
/// How a conversation becomes text for the model, identical in training and serving (a mismatch between
/// the two silently ruins a fine-tuned model). Role markers on their own lines; the assistant's answer
/// follows the last marker and ends with the tokenizer's end-of-text token.
/// </summary>
public static class ChatTemplate
{
    /// <summary>
    /// The text the model continues: the callable tools (when given, as one JSON array under a <c>&lt;|tools|&gt;</c>
    /// marker), every turn (tool results under <c>&lt;|tool|&gt;</c>), then the assistant marker.
    /// </summary>
    public static string RenderPrompt(IEnumerable<ChatMessage> messages, IReadOnlyList<System.Text.Json.Nodes.JsonObject>? tools = null)
    {
        var builder = new System.Text.StringBuilder();
        if (tools is { Count: > 0 })
            builder.Append("<|tools|>\n").Append(new System.Text.Json.Nodes.JsonArray(tools.Select(t => (System.Text.Json.Nodes.JsonNode)t.DeepClone()).ToArray()).ToJsonString()).Append('\n');
        foreach (var message in messages)
            builder.Append("<|").Append(message.Role).Append("|>\n").Append(message.Content).Append('\n');
        builder.Append("<|assistant|>\n");
        return builder.ToString();
    }

    /// <summary>A training example as (prompt, completion); the loss covers the completion only.</summary>
    public static (string Prompt, string Completion) Render(TrainingExample example) => (RenderPrompt(example.Prompt), example.Answer);
}

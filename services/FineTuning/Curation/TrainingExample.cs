using System.Text.Json.Nodes;
using AspireTune.FineTuning.Serving;

namespace AspireTune.FineTuning.Curation;

/// <summary>A function call an assistant turn makes: its id, the function's name and its arguments (a JSON object, as text).</summary>
public sealed record ToolCall(string Id, string Name, string Arguments);

/// <summary>
/// One chat turn of a training example or a request: its text, the function calls of an assistant turn, and for a
/// <c>tool</c> turn the id of the call it answers.
/// </summary>
public sealed record ChatMessage(string Role, string Content, IReadOnlyList<ToolCall>? ToolCalls = null, string? ToolCallId = null)
{
    /// <summary>An assistant turn's <c>weight</c> as the line gives it (0 or 1); null when absent.</summary>
    public int? Weight { get; init; }

    /// <summary>True for an assistant turn training learns: every one but those of weight 0, as the hosted API trains.</summary>
    public bool IsTrained => Role == "assistant" && Weight != 0;

    /// <summary>
    /// The turn as one text: its content, then each call as <see cref="StructuredOutput.ToolCallTrigger"/> and
    /// <c>{"name":…,"arguments":{…}}</c>, the form the built-in template shows and constrained decoding writes.
    /// </summary>
    public string Text => ToolCalls is not { Count: > 0 } calls ? Content
        : Content + string.Concat(calls.Select(c => StructuredOutput.ToolCallTrigger + new JsonObject { ["name"] = c.Name, ["arguments"] = JsonNode.Parse(c.Arguments) }.ToJsonString()));
}

/// <summary>
/// A training example as read from JSONL: chat <c>messages</c> (with the <c>tools</c> the conversation may call), or a
/// prompt/completion pair stored as a user turn and an assistant turn so that everything downstream handles one
/// shape. A preference pair is the same shape (its <c>input</c> messages, then the preferred answer) with the answer
/// not to prefer beside it.
/// </summary>
public sealed record TrainingExample(int LineNumber, IReadOnlyList<ChatMessage> Messages, string? NonPreferred = null)
{
    /// <summary>The functions the conversation may call (the hosted format's <c>tools</c>), as the request gives them; null for none.</summary>
    public IReadOnlyList<JsonObject>? Tools { get; init; }

    /// <summary>The conversation up to the last assistant turn: what the final answer is conditioned on (its earlier assistant turns are trained too, see <see cref="ChatMessage.IsTrained"/>).</summary>
    public IReadOnlyList<ChatMessage> Prompt => Messages.Take(LastAssistantIndex).ToList();

    /// <summary>The last assistant turn: the final answer, which exact match and DPO compare with.</summary>
    public ChatMessage AnswerTurn => Messages[LastAssistantIndex];

    /// <summary>The last assistant turn as text (its label or answer; function calls as <see cref="ChatMessage.Text"/> writes them).</summary>
    public string Answer => AnswerTurn.Text;

    private int LastAssistantIndex
    {
        get
        {
            for (var i = Messages.Count - 1; i >= 0; i--)
                if (Messages[i].Role == "assistant")
                    return i;
            throw new InvalidOperationException("A training example has no assistant turn.");
        }
    }

    /// <summary>All turns (and a pair's answer not to prefer) as one text, for duplicate and leakage comparison.</summary>
    public string FullText => string.Join("\n", Messages.Select(m => $"{m.Role}: {m.Text}")) + (NonPreferred is null ? "" : $"\nnon_preferred: {NonPreferred}");
}

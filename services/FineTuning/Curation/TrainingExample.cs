namespace AspireTune.FineTuning.Curation;

/// <summary>One chat turn of a training example.</summary>
public sealed record ChatMessage(string Role, string Content);

/// <summary>
/// A training example as read from JSONL: chat <c>messages</c>, or a prompt/completion pair stored as a
/// user turn and an assistant turn so that everything downstream handles one shape.
/// </summary>
public sealed record TrainingExample(int LineNumber, IReadOnlyList<ChatMessage> Messages)
{
    /// <summary>The conversation up to the last assistant turn: what the model is conditioned on.</summary>
    public IReadOnlyList<ChatMessage> Prompt => Messages.Take(LastAssistantIndex).ToList();

    /// <summary>The last assistant turn: what the model learns to produce (its label or answer).</summary>
    public string Answer => Messages[LastAssistantIndex].Content;

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

    /// <summary>All turns as one text, for duplicate and leakage comparison.</summary>
    public string FullText => string.Join("\n", Messages.Select(m => $"{m.Role}: {m.Content}"));
}

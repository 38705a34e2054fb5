namespace AspireTune.Comparison.Workflow;

/// <summary>
/// The prompt variants an experiment starts from, written for the task's labels. The prompt-engineering step
/// evaluates them all on the validation split and keeps the best per model; the retrieval variant adds the
/// nearest labelled examples; the fine-tuned model sees exactly the prompt it was trained on.
/// </summary>
public static class PromptVariants
{
    public const string TrainingPrompt = "Message: {{$input}}\nLabel:";

    public static IReadOnlyList<(string Name, string Template)> Prompted(IReadOnlyCollection<string> labels)
    {
        var list = string.Join(", ", labels);
        return
        [
            ("zero-shot", $"Classify the message into exactly one of these labels: {list}.\nAnswer with the label only.\n\nMessage: {{{{$input}}}}\nLabel:"),
            ("instructed", $"You are a careful annotator. Read the message and decide which label fits it best.\nAllowed labels: {list}.\nReply with one label from the list and nothing else.\n\nMessage:\n{{{{$input}}}}\n\nLabel:"),
        ];
    }

    public static (string Name, string Template) Retrieval(IReadOnlyCollection<string> labels) =>
        ("dynamic-few-shot", $"Classify the message into exactly one of these labels: {string.Join(", ", labels)}.\nHere are labelled messages similar to it:\n\n{{{{$examples}}}}\n\nAnswer with the label only.\n\nMessage: {{{{$input}}}}\nLabel:");

    public static (string Name, string Template) FineTuned() => ("fine-tuned", TrainingPrompt);

    /// <summary>The training prompt with an input filled in: what the fine-tuned model is taught to complete.</summary>
    public static string TrainingPromptFor(string input) => TrainingPrompt.Replace("{{$input}}", input, StringComparison.Ordinal);
}

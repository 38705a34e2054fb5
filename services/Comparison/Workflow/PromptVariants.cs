using AspireTune.Contracts.Comparison;

namespace AspireTune.Comparison.Workflow;

/// <summary>
/// The prompt variants an experiment starts from, written for the task's labels (classification) or its instruction
/// and reference fields (generation). The prompt-engineering step evaluates them all on the validation split and keeps
/// the best per model; the retrieval variant adds the nearest training examples; the fine-tuned model sees exactly
/// the prompt it was trained on.
/// </summary>
public static class PromptVariants
{
    public const string TrainingPrompt = "Message: {{$input}}\nLabel:";

    /// <summary>What the fine-tuned model completes on a generation task: the input, then its reference.</summary>
    public const string GenerationTrainingPrompt = "Input: {{$input}}\nOutput:";

    /// <summary>The instruction of a generation experiment that gives none.</summary>
    public const string DefaultInstruction = "Write the output that the input calls for.";

    public static IReadOnlyList<(string Name, string Template)> Prompted(IReadOnlyCollection<string> labels)
    {
        var list = string.Join(", ", labels);
        return
        [
            ("zero-shot", $"Classify the message into exactly one of these labels: {list}.\nAnswer with the label only.\n\nMessage: {{{{$input}}}}\nLabel:"),
            ("instructed", $"You are a careful annotator. Read the message and decide which label fits it best.\nAllowed labels: {list}.\nReply with one label from the list and nothing else.\n\nMessage:\n{{{{$input}}}}\n\nLabel:"),
        ];
    }

    /// <summary>Generation: the instruction alone, and the instruction with the answer's shape (its JSON fields, or brevity).</summary>
    public static IReadOnlyList<(string Name, string Template)> PromptedGeneration(string? instruction, IReadOnlyList<string>? fields)
    {
        var task = Instruction(instruction);
        var shape = fields is { Count: > 0 }
            ? $"Answer with one JSON object on one line with exactly these fields: {string.Join(", ", fields)}."
            : "Answer briefly, reusing the words of the input where they fit.";
        return
        [
            ("zero-shot", $"{task}\nAnswer with the output only.\n\nInput: {{{{$input}}}}\nOutput:"),
            ("structured", $"{task}\n{shape}\n\nInput: {{{{$input}}}}\nOutput:"),
        ];
    }

    public static (string Name, string Template) Retrieval(IReadOnlyCollection<string> labels) =>
        ("dynamic-few-shot", $"Classify the message into exactly one of these labels: {string.Join(", ", labels)}.\nHere are labelled messages similar to it:\n\n{{{{$examples}}}}\n\nAnswer with the label only.\n\nMessage: {{{{$input}}}}\nLabel:");

    /// <summary>Generation: the instruction, the nearest training inputs with their references, then the input.</summary>
    public static (string Name, string Template) RetrievalGeneration(string? instruction) =>
        ("dynamic-few-shot", $"{Instruction(instruction)}\nHere are inputs similar to it with their outputs:\n\n{{{{$examples}}}}\n\nAnswer with the output only.\n\nInput: {{{{$input}}}}\nOutput:");

    public static (string Name, string Template) FineTuned(ExperimentTask task = ExperimentTask.Classification) =>
        ("fine-tuned", task == ExperimentTask.Generation ? GenerationTrainingPrompt : TrainingPrompt);

    /// <summary>The training prompt with an input filled in: what the fine-tuned model is taught to complete.</summary>
    public static string TrainingPromptFor(string input, ExperimentTask task = ExperimentTask.Classification) =>
        FineTuned(task).Template.Replace("{{$input}}", input, StringComparison.Ordinal);

    private static string Instruction(string? instruction) => string.IsNullOrWhiteSpace(instruction) ? DefaultInstruction : instruction.Trim();
}

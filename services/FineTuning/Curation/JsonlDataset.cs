using System.Text;
using System.Text.Json;

namespace AspireTune.FineTuning.Curation;

/// <summary>A problem on one line of a JSONL file (1-based line number).</summary>
public sealed record JsonlError(int Line, string Message)
{
    public override string ToString() => $"line {Line}: {Message}";
}

/// <summary>What a JSONL file holds: its examples, the format it used, and every line it could not read.</summary>
public sealed record JsonlParseResult(IReadOnlyList<TrainingExample> Examples, string Format, IReadOnlyList<JsonlError> Errors, int ErrorCount)
{
    public bool IsValid => ErrorCount == 0 && Examples.Count > 0;

    /// <summary>One sentence naming the first errors and their lines, for a ProblemDetails or a failed job.</summary>
    public string Summary()
    {
        if (Examples.Count == 0 && ErrorCount == 0)
            return "The file is empty: it holds no JSONL lines.";
        var shown = string.Join("; ", Errors.Select(e => e.ToString()));
        return ErrorCount > Errors.Count ? $"{ErrorCount} invalid lines; first {Errors.Count}: {shown}" : $"{ErrorCount} invalid line(s): {shown}";
    }
}

/// <summary>
/// Reads training JSONL: chat lines <c>{"messages":[{"role":"system|user|assistant","content":"..."}]}</c>
/// or <c>{"prompt":"...","completion":"..."}</c> pairs. Blank lines are skipped; every other line must be
/// one of the two shapes, and all lines of a file the same shape.
/// </summary>
public static class JsonlDataset
{
    public const string ChatFormat = "chat";
    public const string PromptCompletionFormat = "prompt_completion";
    private const int MaxReportedErrors = 20;
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static JsonlParseResult Parse(ReadOnlySpan<byte> content)
    {
        var examples = new List<TrainingExample>();
        var errors = new List<JsonlError>();
        var errorCount = 0;
        string? format = null;
        var lineNumber = 0;

        // A UTF-8 byte order mark is legal at the start of a file; skip it rather than failing line 1.
        if (content.StartsWith("\uFEFF"u8))
            content = content[3..];

        while (!content.IsEmpty)
        {
            lineNumber++;
            var end = content.IndexOf((byte)'\n');
            var line = end < 0 ? content : content[..end];
            content = end < 0 ? [] : content[(end + 1)..];
            if (!line.IsEmpty && line[^1] == (byte)'\r')
                line = line[..^1];
            if (line.Trim(" \t"u8).IsEmpty)
                continue;

            var (example, lineFormat, error) = ParseLine(line, lineNumber);
            if (error is null && format is not null && lineFormat != format)
                error = $"this line is in the {Describe(lineFormat!)} format but earlier lines are in the {Describe(format)} format; use one format per file";
            if (error is not null)
            {
                errorCount++;
                if (errors.Count < MaxReportedErrors)
                    errors.Add(new JsonlError(lineNumber, error));
                continue;
            }
            format ??= lineFormat;
            examples.Add(example!);
        }
        return new JsonlParseResult(examples, format ?? ChatFormat, errors, errorCount);
    }

    private static string Describe(string format) => format == ChatFormat ? "chat (messages)" : "prompt/completion";

    private static (TrainingExample?, string?, string?) ParseLine(ReadOnlySpan<byte> line, int lineNumber)
    {
        try
        {
            StrictUtf8.GetCharCount(line);
        }
        catch (DecoderFallbackException)
        {
            return (null, null, "the line is not valid UTF-8");
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(line.ToArray());
        }
        catch (JsonException ex)
        {
            return (null, null, $"invalid JSON ({ex.Message.Split(" LineNumber:")[0].TrimEnd('.')}, at byte {ex.BytePositionInLine})");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                return (null, null, $"expected a JSON object, got {root.ValueKind.ToString().ToLowerInvariant()}");
            var hasMessages = root.TryGetProperty("messages", out var messages);
            var hasPrompt = root.TryGetProperty("prompt", out var prompt);
            var hasCompletion = root.TryGetProperty("completion", out var completion);
            if (hasMessages && (hasPrompt || hasCompletion))
                return (null, null, "the object has both \"messages\" and \"prompt\"/\"completion\"; use one format");
            if (hasMessages)
                return ParseChat(messages, lineNumber);
            if (hasPrompt || hasCompletion)
                return ParsePair(hasPrompt, prompt, hasCompletion, completion, lineNumber);
            return (null, null, "the object has neither \"messages\" nor \"prompt\" and \"completion\"");
        }
    }

    private static (TrainingExample?, string?, string?) ParseChat(JsonElement messages, int lineNumber)
    {
        if (messages.ValueKind != JsonValueKind.Array)
            return (null, null, "\"messages\" must be an array");
        var turns = new List<ChatMessage>();
        var index = 0;
        foreach (var message in messages.EnumerateArray())
        {
            var where = $"messages[{index++}]";
            if (message.ValueKind != JsonValueKind.Object)
                return (null, null, $"{where} must be an object with \"role\" and \"content\"");
            if (!message.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String)
                return (null, null, $"{where}.role is missing or not a string");
            var roleName = role.GetString()!;
            if (roleName is not ("system" or "user" or "assistant"))
                return (null, null, $"{where}.role is '{roleName}'; expected system, user or assistant");
            if (!message.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String)
                return (null, null, $"{where}.content is missing or not a string");
            turns.Add(new ChatMessage(roleName, content.GetString()!));
        }
        if (turns.Count == 0)
            return (null, null, "\"messages\" is empty");
        if (turns[^1].Role != "assistant")
            return (null, null, $"the last message is from '{turns[^1].Role}'; the last message must be the assistant's answer to learn");
        if (string.IsNullOrWhiteSpace(turns[^1].Content))
            return (null, null, $"messages[{turns.Count - 1}].content (the assistant's answer) is empty");
        if (turns.Count(t => t.Role != "system") < 2)
            return (null, null, "\"messages\" needs at least one user turn before the assistant's answer");
        return (new TrainingExample(lineNumber, turns), ChatFormat, null);
    }

    private static (TrainingExample?, string?, string?) ParsePair(bool hasPrompt, JsonElement prompt, bool hasCompletion, JsonElement completion, int lineNumber)
    {
        if (!hasPrompt || prompt.ValueKind != JsonValueKind.String)
            return (null, null, "\"prompt\" is missing or not a string");
        if (!hasCompletion || completion.ValueKind != JsonValueKind.String)
            return (null, null, "\"completion\" is missing or not a string");
        if (string.IsNullOrWhiteSpace(completion.GetString()))
            return (null, null, "\"completion\" is empty");
        return (new TrainingExample(lineNumber, [new ChatMessage("user", prompt.GetString()!), new ChatMessage("assistant", completion.GetString()!)]), PromptCompletionFormat, null);
    }

    /// <summary>Writes examples back as chat JSONL (the curated set the trainer reads).</summary>
    public static byte[] Write(IEnumerable<TrainingExample> examples)
    {
        using var stream = new MemoryStream();
        foreach (var example in examples)
        {
            using (var writer = new Utf8JsonWriter(stream))
            {
                writer.WriteStartObject();
                writer.WriteStartArray("messages");
                foreach (var m in example.Messages)
                {
                    writer.WriteStartObject();
                    writer.WriteString("role", m.Role);
                    writer.WriteString("content", m.Content);
                    writer.WriteEndObject();
                }
                writer.WriteEndArray();
                writer.WriteNumber("source_line", example.LineNumber);
                writer.WriteEndObject();
            }
            stream.WriteByte((byte)'\n');
        }
        return stream.ToArray();
    }
}

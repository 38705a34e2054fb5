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
/// Reads training JSONL: chat lines <c>{"messages":[{"role":"system|user|assistant","content":"..."}]}</c> (with
/// function calling: <c>tools</c>, assistant <c>tool_calls</c> and <c>tool</c> turns, see <see cref="ToolTurns"/>),
/// <c>{"prompt":"...","completion":"..."}</c> pairs, or preference pairs in the hosted DPO format
/// <c>{"input":{"messages":[...]},"preferred_output":[{"role":"assistant","content":"..."}],"non_preferred_output":[...]}</c>.
/// Blank lines are skipped; every other line must be one of the three shapes, and all lines of a file the same shape.
/// </summary>
public static class JsonlDataset
{
    /// <summary>Messages one example may hold: a line at the limit renders in under a second with the Llama 3 template.</summary>
    public const int MaxMessages = 1024;

    public const string ChatFormat = "chat";
    public const string PromptCompletionFormat = "prompt_completion";
    public const string PreferenceFormat = "preference";
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

    private static string Describe(string format) => format switch
    {
        ChatFormat => "chat (messages)",
        PreferenceFormat => "preference (input, preferred_output, non_preferred_output)",
        _ => "prompt/completion",
    };

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
            try
            {
                return ParseObject(document.RootElement, lineNumber);
            }
            catch (InvalidOperationException)
            {
                // System.Text.Json refuses to unescape a lone surrogate (\ud800) in a name or string it is asked to read.
                return (null, null, "the line holds an escaped lone surrogate (such as \\ud800), which is not valid Unicode text");
            }
        }
    }

    private static (TrainingExample?, string?, string?) ParseObject(JsonElement root, int lineNumber)
    {
        if (root.ValueKind != JsonValueKind.Object)
            return (null, null, $"expected a JSON object, got {root.ValueKind.ToString().ToLowerInvariant()}");
        var hasMessages = root.TryGetProperty("messages", out var messages);
        var hasPrompt = root.TryGetProperty("prompt", out var prompt);
        var hasCompletion = root.TryGetProperty("completion", out var completion);
        var hasPreference = root.TryGetProperty("input", out _) || root.TryGetProperty("preferred_output", out _) || root.TryGetProperty("non_preferred_output", out _);
        if (hasPreference && (hasMessages || hasPrompt || hasCompletion))
            return (null, null, "the object mixes the preference fields (input, preferred_output, non_preferred_output) with \"messages\" or \"prompt\"/\"completion\"; use one format");
        if (hasPreference)
            return ParsePreference(root, lineNumber);
        if (hasMessages && (hasPrompt || hasCompletion))
            return (null, null, "the object has both \"messages\" and \"prompt\"/\"completion\"; use one format");
        if (hasMessages)
            return ParseChat(root, messages, lineNumber);
        if (hasPrompt || hasCompletion)
            return ParsePair(hasPrompt, prompt, hasCompletion, completion, lineNumber);
        return (null, null, "the object has neither \"messages\" nor \"prompt\" and \"completion\"");
    }

    private static (TrainingExample?, string?, string?) ParseChat(JsonElement root, JsonElement messages, int lineNumber)
    {
        if (ToolTurns.ReadTools(root, out var tools) is { } toolsError)
            return (null, null, toolsError);
        if (ReadMessages(messages, "messages", out var turns, toolTurns: true) is { } error)
            return (null, null, error);
        if (turns.Count == 0)
            return (null, null, "\"messages\" is empty");
        if (turns[^1].Role != "assistant")
            return (null, null, $"the last message is from '{turns[^1].Role}'; the last message must be the assistant's answer to learn");
        if (string.IsNullOrWhiteSpace(turns[^1].Content) && turns[^1].ToolCalls is null)
            return (null, null, $"messages[{turns.Count - 1}].content (the assistant's answer) is empty");
        if (!turns.Any(t => t.IsTrained))
            return (null, null, "every assistant turn has weight 0: the line has nothing to learn (every assistant turn without weight 0 is trained)");
        if (turns.Count(t => t.Role != "system") < 2)
            return (null, null, "\"messages\" needs at least one user turn before the assistant's answer");
        if (ToolTurns.Check(turns, tools, "messages") is { } callError)
            return (null, null, callError);
        return (new TrainingExample(lineNumber, turns) { Tools = tools }, ChatFormat, null);
    }

    /// <summary>
    /// Reads an array of role/content messages; returns the error naming <paramref name="path"/>, or null. With
    /// <paramref name="toolTurns"/>, assistant turns may carry <c>tool_calls</c> (and then no content) and <c>tool</c>
    /// turns answer them.
    /// </summary>
    private static string? ReadMessages(JsonElement messages, string path, out List<ChatMessage> turns, bool toolTurns = false)
    {
        turns = [];
        if (messages.ValueKind != JsonValueKind.Array)
            return $"\"{path}\" must be an array";
        if (messages.GetArrayLength() > MaxMessages)
            return $"\"{path}\" has {messages.GetArrayLength():N0} messages; at most {MaxMessages:N0} per example (every trained turn is rendered with the conversation before it, so the cost of a line grows with the square of its turns)";
        var index = 0;
        foreach (var message in messages.EnumerateArray())
        {
            var where = $"{path}[{index++}]";
            if (message.ValueKind != JsonValueKind.Object)
                return $"{where} must be an object with \"role\" and \"content\"";
            if (!message.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String)
                return $"{where}.role is missing or not a string";
            var roleName = role.GetString()!;
            if (roleName == "function" || message.TryGetProperty("function_call", out _))
                return $"{where} uses the legacy function_call format; give the calls as \"tool_calls\" and their results as role \"tool\" turns";
            if (roleName is not ("system" or "user" or "assistant") && !(toolTurns && roleName == "tool"))
                return $"{where}.role is '{roleName}'; expected system, user{(toolTurns ? ", assistant or tool" : " or assistant")}";
            int? turnWeight = null;
            if (message.TryGetProperty("weight", out var weight))
            {
                if (roleName != "assistant" || weight.ValueKind != JsonValueKind.Number || !weight.TryGetInt32(out var w) || w is not (0 or 1))
                    return roleName != "assistant" ? $"{where}.weight is only for assistant turns" : $"{where}.weight must be 0 or 1";
                turnWeight = w;
            }
            List<ToolCall>? calls = null;
            if (toolTurns && roleName == "assistant" && ToolTurns.ReadCalls(message, where, out calls) is { } callsError)
                return callsError;
            if (!toolTurns && message.TryGetProperty("tool_calls", out _))
                return $"{where}.tool_calls is not supported here";
            var hasContent = message.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String;
            if (!hasContent && !(calls is not null && (!message.TryGetProperty("content", out var c) || c.ValueKind == JsonValueKind.Null)))
                return $"{where}.content is missing or not a string";
            string? callId = null;
            if (roleName == "tool")
            {
                if (!message.TryGetProperty("tool_call_id", out var id) || id.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(id.GetString()))
                    return $"{where}.tool_call_id is missing or not a string (the id of the call this result answers)";
                callId = id.GetString();
            }
            turns.Add(new ChatMessage(roleName, hasContent ? content.GetString()! : "", calls, callId) { Weight = turnWeight });
        }
        return null;
    }

    /// <summary>A hosted-format preference pair: the input conversation, ending with the user's turn, and one assistant answer of each kind.</summary>
    private static (TrainingExample?, string?, string?) ParsePreference(JsonElement root, int lineNumber)
    {
        if (!root.TryGetProperty("input", out var input) || input.ValueKind != JsonValueKind.Object)
            return (null, null, "\"input\" is missing or not an object with \"messages\"");
        if (!input.TryGetProperty("messages", out var messages))
            return (null, null, "\"input.messages\" is missing");
        if (ReadMessages(messages, "input.messages", out var turns) is { } error)
            return (null, null, error);
        if (input.TryGetProperty("tools", out var tools) && tools.ValueKind == JsonValueKind.Array && tools.GetArrayLength() > 0)
            return (null, null, "\"input.tools\" is not supported in preference training here; give the conversation without tools");
        if (turns.Count == 0 || turns[^1].Role != "user")
            return (null, null, turns.Count == 0 ? "\"input.messages\" is empty" : $"the last input message is from '{turns[^1].Role}'; it must be the user's turn that both answers reply to");
        var answers = new string[2];
        string[] fields = ["preferred_output", "non_preferred_output"];
        for (var k = 0; k < 2; k++)
        {
            if (!root.TryGetProperty(fields[k], out var output))
                return (null, null, $"\"{fields[k]}\" is missing");
            if (ReadMessages(output, fields[k], out var said) is { } outputError)
                return (null, null, outputError);
            if (said.Count != 1 || said[0].Role != "assistant")
                return (null, null, $"\"{fields[k]}\" must hold exactly one message, from the assistant");
            if (string.IsNullOrWhiteSpace(said[0].Content))
                return (null, null, $"{fields[k]}[0].content is empty");
            answers[k] = said[0].Content;
        }
        if (answers[0] == answers[1])
            return (null, null, "preferred_output and non_preferred_output are the same answer; a pair needs two different ones");
        return (new TrainingExample(lineNumber, [.. turns, new ChatMessage("assistant", answers[0])], answers[1]), PreferenceFormat, null);
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

    /// <summary>Writes examples back as chat JSONL, preference pairs in the preference format (the curated set the trainer reads).</summary>
    public static byte[] Write(IEnumerable<TrainingExample> examples)
    {
        using var stream = new MemoryStream();
        foreach (var example in examples)
        {
            using (var writer = new Utf8JsonWriter(stream))
            {
                writer.WriteStartObject();
                if (example.NonPreferred is { } other)
                {
                    writer.WriteStartObject("input");
                    WriteMessages(writer, "messages", example.Prompt);
                    writer.WriteEndObject();
                    WriteMessages(writer, "preferred_output", [new ChatMessage("assistant", example.Answer)]);
                    WriteMessages(writer, "non_preferred_output", [new ChatMessage("assistant", other)]);
                }
                else
                {
                    WriteMessages(writer, "messages", example.Messages);
                    ToolTurns.WriteTools(writer, example.Tools);
                }
                writer.WriteNumber("source_line", example.LineNumber);
                writer.WriteEndObject();
            }
            stream.WriteByte((byte)'\n');
        }
        return stream.ToArray();
    }

    private static void WriteMessages(Utf8JsonWriter writer, string name, IEnumerable<ChatMessage> messages)
    {
        writer.WriteStartArray(name);
        foreach (var m in messages)
        {
            writer.WriteStartObject();
            writer.WriteString("role", m.Role);
            writer.WriteString("content", m.Content);
            ToolTurns.WriteCalls(writer, m);
            if (m.Weight is { } weight)
                writer.WriteNumber("weight", weight);
            writer.WriteEndObject();
        }
        writer.WriteEndArray();
    }
}

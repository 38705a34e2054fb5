using System.Text.Json;
using System.Text.Json.Nodes;

namespace AspireTune.FineTuning.Curation;

/// <summary>
/// The function-calling parts of the hosted chat format: a line's <c>tools</c>, an assistant turn's
/// <c>tool_calls</c> (<c>{id, type: "function", function: {name, arguments: "&lt;JSON object&gt;"}}</c>) and a tool
/// turn's <c>tool_call_id</c>, read with errors that name the field, and written back the same way.
/// </summary>
internal static class ToolTurns
{
    /// <summary>The line's <c>tools</c> (null when absent), or an error naming the entry.</summary>
    public static string? ReadTools(JsonElement root, out List<JsonObject>? tools)
    {
        tools = null;
        if (!root.TryGetProperty("tools", out var array) || array.ValueKind == JsonValueKind.Null)
            return null;
        if (array.ValueKind != JsonValueKind.Array)
            return "\"tools\" must be an array of {\"type\":\"function\",\"function\":{\"name\":…}}";
        tools = [];
        var names = new HashSet<string>(StringComparer.Ordinal);
        var index = 0;
        foreach (var tool in array.EnumerateArray())
        {
            var where = $"tools[{index++}]";
            if (tool.ValueKind != JsonValueKind.Object || !tool.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String || type.GetString() != "function")
                return $"{where} must be an object with \"type\": \"function\"";
            if (!tool.TryGetProperty("function", out var function) || function.ValueKind != JsonValueKind.Object
                || !function.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(name.GetString()))
                return $"{where}.function.name is missing or not a string";
            if (function.TryGetProperty("parameters", out var parameters) && parameters.ValueKind != JsonValueKind.Object)
                return $"{where}.function.parameters must be a JSON Schema object";
            if (!names.Add(name.GetString()!))
                return $"{where}: the function '{name.GetString()}' is listed twice";
            tools.Add(JsonNode.Parse(tool.GetRawText())!.AsObject());
        }
        return null;
    }

    /// <summary>An assistant turn's <c>tool_calls</c>, or an error naming the call.</summary>
    public static string? ReadCalls(JsonElement message, string where, out List<ToolCall>? calls)
    {
        calls = null;
        if (!message.TryGetProperty("tool_calls", out var array) || array.ValueKind == JsonValueKind.Null)
            return null;
        if (array.ValueKind != JsonValueKind.Array || array.GetArrayLength() == 0)
            return $"{where}.tool_calls must be a non-empty array";
        calls = [];
        var index = 0;
        foreach (var call in array.EnumerateArray())
        {
            var at = $"{where}.tool_calls[{index++}]";
            if (call.ValueKind != JsonValueKind.Object)
                return $"{at} must be an object";
            if (!call.TryGetProperty("id", out var id) || id.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(id.GetString()))
                return $"{at}.id is missing or not a string";
            if (call.TryGetProperty("type", out var type) && (type.ValueKind != JsonValueKind.String || type.GetString() != "function"))
                return $"{at}.type must be \"function\"";
            if (!call.TryGetProperty("function", out var function) || function.ValueKind != JsonValueKind.Object
                || !function.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(name.GetString()))
                return $"{at}.function.name is missing or not a string";
            if (!function.TryGetProperty("arguments", out var arguments) || arguments.ValueKind != JsonValueKind.String)
                return $"{at}.function.arguments must be a string holding a JSON object";
            JsonNode? parsed;
            try
            {
                parsed = JsonNode.Parse(arguments.GetString()!);
            }
            catch (JsonException)
            {
                parsed = null;
            }
            if (parsed is not JsonObject)
                return $"{at}.function.arguments is not a JSON object";
            calls.Add(new ToolCall(id.GetString()!, name.GetString()!, parsed.ToJsonString()));
        }
        return null;
    }

    /// <summary>
    /// The conversation's calls against its tools and its tool turns against its calls: every call names a listed
    /// function, every tool turn answers an earlier call. Returns the first mismatch, or null.
    /// </summary>
    public static string? Check(IReadOnlyList<ChatMessage> turns, IReadOnlyList<JsonObject>? tools, string path)
    {
        var names = tools?.Select(t => t["function"]!["name"]!.GetValue<string>()).ToHashSet(StringComparer.Ordinal);
        var made = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < turns.Count; i++)
        {
            foreach (var (call, j) in (turns[i].ToolCalls ?? []).Select((c, j) => (c, j)))
            {
                if (names is null)
                    return $"{path}[{i}].tool_calls[{j}] calls '{call.Name}' but the line has no \"tools\" listing the functions";
                if (!names.Contains(call.Name))
                    return $"{path}[{i}].tool_calls[{j}] calls '{call.Name}', which \"tools\" does not list";
                made.Add(call.Id);
            }
            if (turns[i].Role == "tool" && !made.Contains(turns[i].ToolCallId!))
                return $"{path}[{i}].tool_call_id '{turns[i].ToolCallId}' answers no earlier tool call";
        }
        return null;
    }

    public static void WriteCalls(Utf8JsonWriter writer, ChatMessage message)
    {
        if (message.ToolCalls is { Count: > 0 } calls)
        {
            writer.WriteStartArray("tool_calls");
            foreach (var call in calls)
            {
                writer.WriteStartObject();
                writer.WriteString("id", call.Id);
                writer.WriteString("type", "function");
                writer.WriteStartObject("function");
                writer.WriteString("name", call.Name);
                writer.WriteString("arguments", call.Arguments);
                writer.WriteEndObject();
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
        }
        if (message.ToolCallId is { } id)
            writer.WriteString("tool_call_id", id);
    }

    public static void WriteTools(Utf8JsonWriter writer, IReadOnlyList<JsonObject>? tools)
    {
        if (tools is null)
            return;
        writer.WritePropertyName("tools");
        new JsonArray([.. tools.Select(t => (JsonNode)t.DeepClone())]).WriteTo(writer);
    }
}

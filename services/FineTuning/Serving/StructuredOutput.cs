using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using AspireTune.Engine.Generation;
using AspireTune.Engine.Models;

namespace AspireTune.FineTuning.Serving;

/// <summary>
/// <c>response_format</c> (<c>json_object</c>, <c>json_schema</c>) and <c>tools</c>/<c>tool_choice</c> of a chat
/// request, enforced by one mechanism: a JSON grammar applied as a logit mask while decoding, so the output
/// parses (and follows the schema) whatever the model would have preferred. A tool call is the grammar
/// <c>{"name":…,"arguments":…}</c>: the whole output for <c>tool_choice: required</c> or a named function, and
/// for <c>auto</c> only after the model writes <see cref="ToolCallTrigger"/> first (free text otherwise).
/// <c>guided_choice</c> (vLLM's extension: a list of strings) makes the output exactly one of them, by the same
/// mechanism over the choices' bytes (<see cref="ChoiceConstraint"/>); classification runs use it with the labels.
/// </summary>
public sealed partial class StructuredOutput
{
    /// <summary>What opens a tool call in the output under <c>tool_choice: auto</c>; also how past calls are rendered in prompts.</summary>
    public const string ToolCallTrigger = "<tool_call>";

    private enum ToolMode { None, Auto, Required }

    /// <summary>Most strings <c>guided_choice</c> may list, and the longest one (UTF-8 bytes).</summary>
    public const int MaxChoices = 1000, MaxChoiceBytes = 1000;

    private readonly JsonGrammar? _grammar;
    private readonly ToolMode _toolMode;
    private readonly IReadOnlyList<string>? _choices;
    private readonly ToolCallFormat _calls;

    /// <summary>The function definitions (<c>name</c>, <c>description</c>, <c>parameters</c>) as the prompt shows them; empty without tools.</summary>
    public IReadOnlyList<JsonObject> Tools { get; }

    private StructuredOutput(JsonGrammar? grammar, ToolMode toolMode, IReadOnlyList<JsonObject> tools, IReadOnlyList<string>? choices = null,
        ToolCallFormat? calls = null)
    {
        _grammar = grammar;
        _toolMode = toolMode;
        Tools = tools;
        _choices = choices;
        _calls = calls ?? ToolCallFormat.BuiltIn;
    }

    public bool Constrained => _grammar is not null || _choices is not null;

    public bool CallsTools => _toolMode != ToolMode.None;

    /// <summary>What a call starts with in the output: under <c>auto</c> the opening that tells it from text, else the form's prefix.</summary>
    private string Opening => _toolMode == ToolMode.Auto ? _calls.Trigger : _calls.Prefix;

    [GeneratedRegex("^[a-zA-Z0-9_-]{1,64}$")]
    private static partial Regex FunctionName();

    /// <summary>
    /// The request's constraint. Tool calls are written and read in <paramref name="calls"/>' form (the model's chat
    /// template's, <see cref="ChatTemplate.CallFormat"/>; the built-in one by default).
    /// </summary>
    public static StructuredOutput Parse(JsonObject body, ToolCallFormat? calls = null)
    {
        calls ??= ToolCallFormat.BuiltIn;
        var format = ParseResponseFormat(body["response_format"]);
        var (tools, schemas) = ParseTools(body["tools"]);
        var choice = ParseToolChoice(body["tool_choice"], tools);
        if (ParseGuidedChoice(body["guided_choice"]) is { } choices)
            return format is not null || (tools.Count > 0 && choice is not null)
                ? throw new OpenAiException(400, "guided_choice cannot be combined with response_format json_object/json_schema or tools; send one of them.", "guided_choice")
                : new StructuredOutput(null, ToolMode.None, [], choices);
        if (tools.Count == 0 || choice is null)
            return new StructuredOutput(format, ToolMode.None, []);
        if (format is not null)
            throw new OpenAiException(400, "response_format json_object/json_schema together with tools is not supported; send one or the other.", "response_format");
        var callable = choice == "*" ? schemas : schemas.Where(s => s.Name == choice).ToList();
        try
        {
            // Compiled here so that a schema this grammar cannot enforce is a 400 before any model is loaded.
            var grammar = JsonGrammar.ToolCall(callable, calls.NameKey, calls.ArgumentsKey);
            return new StructuredOutput(grammar, choice == "auto" ? ToolMode.Auto : ToolMode.Required, tools, calls: calls);
        }
        catch (UnsupportedSchemaException ex)
        {
            throw new OpenAiException(400, ex.Message, ex.Path);
        }
    }

    private static List<string>? ParseGuidedChoice(JsonNode? node)
    {
        if (node is null || node.GetValueKind() == JsonValueKind.Null)
            return null;
        const string shape = "'guided_choice' must be an array of 1 to 1000 distinct non-empty strings of at most 1000 bytes each.";
        if (node is not JsonArray array || array.Count is 0 or > MaxChoices)
            throw new OpenAiException(400, shape, "guided_choice");
        var choices = new List<string>(array.Count);
        for (var i = 0; i < array.Count; i++)
        {
            if (array[i] is not JsonValue v || v.GetValueKind() != JsonValueKind.String || v.GetValue<string>() is not { Length: > 0 } text
                || Encoding.UTF8.GetByteCount(text) > MaxChoiceBytes || choices.Contains(text, StringComparer.Ordinal))
                throw new OpenAiException(400, shape, $"guided_choice[{i}]");
            choices.Add(text);
        }
        return choices;
    }

    private static JsonGrammar? ParseResponseFormat(JsonNode? node)
    {
        if (node is null || node.GetValueKind() == JsonValueKind.Null)
            return null;
        if (node is not JsonObject format || AspireTune.ServiceDefaults.OpenAi.OpenAiRequest.OptionalString(format, "type") is not { } type)
            throw new OpenAiException(400, "'response_format' must be an object with a 'type': text, json_object or json_schema.", "response_format");
        switch (type)
        {
            case "text":
                return null;
            case "json_object":
                return JsonGrammar.AnyObject();
            case "json_schema":
                if (format["json_schema"] is not JsonObject spec)
                    throw new OpenAiException(400, "'response_format.json_schema' is required with type json_schema: {name, schema, strict}.", "response_format.json_schema");
                if (AspireTune.ServiceDefaults.OpenAi.OpenAiRequest.OptionalString(spec, "name") is not { } name || !FunctionName().IsMatch(name))
                    throw new OpenAiException(400, "'response_format.json_schema.name' is required: letters, digits, '_' and '-', at most 64.", "response_format.json_schema.name");
                var schema = spec["schema"] ?? new JsonObject { ["type"] = "object" };
                try
                {
                    return JsonGrammar.FromSchema(schema);
                }
                catch (UnsupportedSchemaException ex)
                {
                    throw new OpenAiException(400, ex.Message, "response_format.json_schema." + ex.Path);
                }
            default:
                throw new OpenAiException(400, $"response_format.type '{type}' is not one of text, json_object, json_schema.", "response_format.type");
        }
    }

    private static (List<JsonObject> Tools, List<(string Name, JsonNode? Parameters)> Schemas) ParseTools(JsonNode? node)
    {
        if (node is null || node.GetValueKind() == JsonValueKind.Null)
            return ([], []);
        if (node is not JsonArray array)
            throw new OpenAiException(400, "'tools' must be an array of {type: function, function: {name, description, parameters}}.", "tools");
        var tools = new List<JsonObject>();
        var schemas = new List<(string, JsonNode?)>();
        for (var i = 0; i < array.Count; i++)
        {
            if (array[i] is not JsonObject tool || AspireTune.ServiceDefaults.OpenAi.OpenAiRequest.OptionalString(tool, "type") != "function" || tool["function"] is not JsonObject function)
                throw new OpenAiException(400, $"tools[{i}] must be {{\"type\":\"function\",\"function\":{{…}}}}; only function tools are supported.", $"tools[{i}]");
            if (AspireTune.ServiceDefaults.OpenAi.OpenAiRequest.OptionalString(function, "name") is not { } name || !FunctionName().IsMatch(name))
                throw new OpenAiException(400, $"tools[{i}].function.name is required: letters, digits, '_' and '-', at most 64.", $"tools[{i}].function.name");
            if (schemas.Any(s => s.Item1 == name))
                throw new OpenAiException(400, $"tools[{i}].function.name '{name}' is given twice.", $"tools[{i}].function.name");
            var parameters = function["parameters"];
            if (parameters is not null and not JsonObject)
                throw new OpenAiException(400, $"tools[{i}].function.parameters must be a JSON Schema object.", $"tools[{i}].function.parameters");
            var shown = new JsonObject { ["name"] = name };
            if (function["description"] is { } description)
                shown["description"] = description.DeepClone();
            if (parameters is not null)
                shown["parameters"] = parameters.DeepClone();
            tools.Add(shown);
            schemas.Add((name, parameters?.DeepClone()));
        }
        return (tools, schemas);
    }

    /// <summary>null: no tool may be called; "auto"; "*" (required: any tool); otherwise the one function's name.</summary>
    private static string? ParseToolChoice(JsonNode? node, List<JsonObject> tools)
    {
        switch (node)
        {
            case null:
                return tools.Count > 0 ? "auto" : null;
            case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                var choice = v.GetValue<string>();
                if (choice is "none")
                    return null;
                if (choice is not ("auto" or "required"))
                    throw new OpenAiException(400, $"tool_choice '{choice}' is not none, auto, required or {{\"type\":\"function\",\"function\":{{\"name\":…}}}}.", "tool_choice");
                if (tools.Count == 0)
                    throw new OpenAiException(400, $"tool_choice '{choice}' needs 'tools'.", "tool_choice");
                return choice == "required" ? "*" : "auto";
            case JsonObject o when AspireTune.ServiceDefaults.OpenAi.OpenAiRequest.OptionalString(o, "type") == "function" && o["function"] is JsonObject f && AspireTune.ServiceDefaults.OpenAi.OpenAiRequest.OptionalString(f, "name") is { } name:
                return tools.Any(t => t["name"]!.GetValue<string>() == name) ? name
                    : throw new OpenAiException(400, $"tool_choice names the function '{name}', which is not among 'tools'.", "tool_choice");
            default:
                throw new OpenAiException(400, "tool_choice must be none, auto, required or {\"type\":\"function\",\"function\":{\"name\":…}}.", "tool_choice");
        }
    }

    /// <summary>A fresh constraint per generation for this model's vocabulary; null when the output is free.</summary>
    public Func<ITokenConstraint>? ConstraintFor(CausalLm model)
    {
        if (_grammar is null && _choices is null)
            return null;
        var tokenizer = model.Tokenizer ?? throw new OpenAiException(400, "Structured output needs a model with a tokenizer.", _choices is null ? "response_format" : "guided_choice", "model_without_tokenizer");
        var trie = TokenTrie.For(tokenizer, model.Config.VocabSize);
        if (_choices is { } choices)
            return () => new ChoiceConstraint(choices, trie, tokenizer);
        var grammar = _grammar!;
        var opening = Encoding.UTF8.GetBytes(Opening);
        return _toolMode == ToolMode.None ? () => new JsonTokenConstraint(grammar, trie, tokenizer)
            : opening.Length > 0 ? () => new TriggeredJsonConstraint(opening, grammar, trie, tokenizer, required: _toolMode == ToolMode.Required)
            : () => new JsonTokenConstraint(grammar, trie, tokenizer);
    }

    /// <summary>
    /// The assistant message and finish reason for a generated text: a tool call when the output is one (complete),
    /// <c>content</c> otherwise. An output cut by max_tokens keeps finish_reason <c>length</c> and its text as content.
    /// </summary>
    public (JsonObject Message, string FinishReason) ToMessage(string text, string finishReason)
    {
        var message = new JsonObject { ["role"] = "assistant", ["content"] = text, ["refusal"] = null };
        if (_toolMode == ToolMode.None || finishReason != FinishReasons.Stop)
            return (message, finishReason);
        var json = text.StartsWith(Opening, StringComparison.Ordinal) ? text[Opening.Length..] : null;
        if (json is null || JsonNode.Parse(json) is not JsonObject call)
            return (message, finishReason);
        message["content"] = null;
        message["tool_calls"] = new JsonArray(new JsonObject
        {
            ["id"] = "call_" + Guid.NewGuid().ToString("N")[..24],
            ["type"] = "function",
            ["function"] = new JsonObject { ["name"] = call[_calls.NameKey]!.GetValue<string>(), ["arguments"] = call[_calls.ArgumentsKey]!.ToJsonString() },
        });
        return (message, "tool_calls");
    }
}

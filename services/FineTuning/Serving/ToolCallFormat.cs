using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using AspireTune.FineTuning.Curation;

namespace AspireTune.FineTuning.Serving;

/// <summary>
/// How a model writes a function call: <see cref="Prefix"/>, then a JSON object whose <see cref="NameKey"/> holds the
/// function's name and whose <see cref="ArgumentsKey"/> holds its arguments. Constrained decoding writes calls in it
/// and the output is read back with it, so a checkpoint answers in the form its chat template (and its training)
/// uses, not one of ours.
/// </summary>
public sealed partial record ToolCallFormat(string Prefix, string NameKey, string ArgumentsKey)
{
    private const string ProbeName = "probe_function";
    private const string ProbeArgument = "probe_argument";

    /// <summary>The built-in form: <c>&lt;tool_call&gt;{"name":…,"arguments":{…}}</c>.</summary>
    public static ToolCallFormat BuiltIn { get; } = new(StructuredOutput.ToolCallTrigger, "name", "arguments");

    /// <summary>
    /// What opens a call under <c>tool_choice: auto</c>, where the model chooses between text and a call: the prefix,
    /// or the built-in trigger when the model's form has none (a bare JSON object cannot be told from text in time).
    /// </summary>
    public string Trigger => Prefix.Trim().Length > 0 ? Prefix : StructuredOutput.ToolCallTrigger;

    public static JsonObject ProbeTool() => new()
    {
        ["type"] = "function",
        ["function"] = new JsonObject
        {
            ["name"] = ProbeName,
            ["parameters"] = new JsonObject { ["type"] = "object", ["properties"] = new JsonObject { [ProbeArgument] = new JsonObject { ["type"] = "integer" } } },
        },
    };

    /// <summary>An assistant turn calling the probe tool (a nine-character id: Mistral's templates insist on it).</summary>
    public static ChatMessage ProbeTurn() => new("assistant", "", [new ToolCall("probecall", ProbeName, $"{{\"{ProbeArgument}\": 1}}")]);

    /// <summary>
    /// The format a template's rendering of <see cref="ProbeTurn"/> shows; <see cref="BuiltIn"/> when it renders none
    /// (null), or not as one JSON object with the name and the arguments object as values of keys.
    /// </summary>
    public static ToolCallFormat Read(Func<string?> renderProbe)
    {
        if (renderProbe() is not { } text)
            return BuiltIn;
        var name = NameValue().Match(text);
        var arguments = ArgumentsValue().Match(text);
        if (!name.Success || !arguments.Success)
            return BuiltIn;
        // The object the name is a member of; the arguments must come after its opening.
        var open = text.LastIndexOf('{', name.Index);
        if (open < 0 || open > arguments.Index)
            return BuiltIn;
        return new ToolCallFormat(text[..open], name.Groups[1].Value, arguments.Groups[1].Value);
    }

    [GeneratedRegex("\"(\\w+)\"\\s*:\\s*\"" + ProbeName + "\"")]
    private static partial Regex NameValue();

    [GeneratedRegex("\"(\\w+)\"\\s*:\\s*\\{\\s*\"" + ProbeArgument + "\"")]
    private static partial Regex ArgumentsValue();
}

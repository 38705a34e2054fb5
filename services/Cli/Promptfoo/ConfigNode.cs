using System.Globalization;
using System.Text.Json;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace AspireTune.Cli.Promptfoo;

/// <summary>
/// A configuration value with the place it was written: YAML (each node its own line) and JSON/JSONL (each
/// value the line of its record) read into one tree, so tests from any file are checked by the same code.
/// </summary>
public sealed class ConfigNode
{
    private ConfigNode(SourceLocation at) => At = at;

    public SourceLocation At { get; }
    public string? Scalar { get; private init; }

    /// <summary>A YAML scalar written in quotes (always text); plain scalars may be numbers or booleans.</summary>
    public bool Quoted { get; private init; }

    public IReadOnlyList<KeyValuePair<string, ConfigNode>>? Map { get; private init; }
    public IReadOnlyList<ConfigNode>? Sequence { get; private init; }
    public bool IsNull => Scalar is null && Map is null && Sequence is null;

    public ConfigNode? this[string key] => Map?.FirstOrDefault(p => p.Key == key).Value;

    public static ConfigNode FromYaml(string file, string text)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            throw new PromptfooConfigException(new SourceLocation(file, (int)e.Start.Line), $"not valid YAML: {e.InnerException?.Message ?? e.Message}");
        }
        if (stream.Documents.Count == 0)
            return new ConfigNode(new SourceLocation(file, 1));
        return FromYaml(file, stream.Documents[0].RootNode);
    }

    private static ConfigNode FromYaml(string file, YamlNode node)
    {
        var at = new SourceLocation(file, (int)node.Start.Line);
        return node switch
        {
            YamlScalarNode { Style: ScalarStyle.Plain, Value: "" or "~" or "null" or "Null" or "NULL" } => new ConfigNode(at),
            YamlScalarNode s => new ConfigNode(at) { Scalar = s.Value ?? "", Quoted = s.Style != ScalarStyle.Plain },
            YamlSequenceNode seq => new ConfigNode(at) { Sequence = seq.Children.Select(c => FromYaml(file, c)).ToList() },
            YamlMappingNode map => new ConfigNode(at)
            {
                Map = map.Children.Select(p => new KeyValuePair<string, ConfigNode>(p.Key is YamlScalarNode k ? k.Value ?? "" : p.Key.ToString(), FromYaml(file, p.Value))).ToList(),
            },
            _ => throw new PromptfooConfigException(at, "YAML aliases and tags are not supported here."),
        };
    }

    public static ConfigNode FromJson(SourceLocation at, JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Object => new ConfigNode(at) { Map = element.EnumerateObject().Select(p => new KeyValuePair<string, ConfigNode>(p.Name, FromJson(at, p.Value))).ToList() },
        JsonValueKind.Array => new ConfigNode(at) { Sequence = element.EnumerateArray().Select(e => FromJson(at, e)).ToList() },
        JsonValueKind.String => new ConfigNode(at) { Scalar = element.GetString(), Quoted = true },
        JsonValueKind.Null or JsonValueKind.Undefined => new ConfigNode(at),
        _ => new ConfigNode(at) { Scalar = element.GetRawText() },
    };

    public static ConfigNode Text(SourceLocation at, string text) => new(at) { Scalar = text, Quoted = true };

    public static ConfigNode Mapping(SourceLocation at, IEnumerable<KeyValuePair<string, ConfigNode>> pairs) => new(at) { Map = pairs.ToList() };

    public static ConfigNode List(SourceLocation at, IEnumerable<ConfigNode> items) => new(at) { Sequence = items.ToList() };

    /// <summary>The value as JSON: quoted scalars are text, plain ones numbers or booleans where they read as such.</summary>
    public JsonElement ToJson()
    {
        if (Map is not null)
            return JsonSerializer.SerializeToElement(Map.ToDictionary(p => p.Key, p => p.Value.ToJson()));
        if (Sequence is not null)
            return JsonSerializer.SerializeToElement(Sequence.Select(s => s.ToJson()).ToList());
        if (Scalar is null)
            return JsonSerializer.SerializeToElement<object?>(null);
        if (!Quoted && double.TryParse(Scalar, NumberStyles.Float, CultureInfo.InvariantCulture, out _) && IsJsonNumber(Scalar))
            return JsonDocument.Parse(Scalar).RootElement.Clone();
        if (!Quoted && Scalar is "true" or "false")
            return JsonSerializer.SerializeToElement(Scalar == "true");
        return JsonSerializer.SerializeToElement(Scalar);
    }

    private static bool IsJsonNumber(string text)
    {
        try
        {
            using var document = JsonDocument.Parse(text);
            return document.RootElement.ValueKind == JsonValueKind.Number;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    public string RequireText(string what) =>
        Scalar ?? throw new PromptfooConfigException(At, $"{what} must be a text value.");

    public double RequireNumber(string what) =>
        Scalar is not null && double.TryParse(Scalar, NumberStyles.Float, CultureInfo.InvariantCulture, out var value)
            ? value : throw new PromptfooConfigException(At, $"{what} must be a number.");
}

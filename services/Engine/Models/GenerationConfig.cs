using System.Text.Json;
using System.Text.Json.Nodes;

namespace AspireTune.Engine.Models;

/// <summary>
/// A Hugging Face <c>generation_config.json</c>: the ids generation ends at (<c>eos_token_id</c>, one id or a list:
/// Llama 3.1/3.2 Instruct stop at &lt;|end_of_text|&gt;, &lt;|eom_id|&gt; and &lt;|eot_id|&gt;), and every other key,
/// written back unchanged when the model is saved.
/// </summary>
public sealed record GenerationConfig
{
    public const string FileName = "generation_config.json";

    /// <summary>The ids that end a generation, in the file's order; empty when the file names none.</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];

    /// <summary>The file as read, so that sampling defaults and other keys survive a save.</summary>
    public JsonObject? Raw { get; init; }

    /// <summary><c>do_sample</c>: false means greedy decoding is the model's default; null when the file does not say.</summary>
    public bool? DoSample => Raw?["do_sample"] is JsonValue v && v.TryGetValue<bool>(out var b) ? b : null;

    /// <summary><c>temperature</c> when the file gives one within the OpenAI range [0, 2]; else null.</summary>
    public double? Temperature => Number("temperature", 0, 2);

    /// <summary><c>top_p</c> when the file gives one in (0, 1]; else null.</summary>
    public double? TopP => Number("top_p", double.Epsilon, 1);

    private double? Number(string key, double min, double max) =>
        Raw?[key] is JsonValue v && v.TryGetValue<double>(out var d) && d >= min && d <= max ? d : null;

    /// <summary>What a model without a generation_config.json generates with: its config.json's bos and eos.</summary>
    public static GenerationConfig From(ModelConfig config) => new()
    {
        EosTokenIds = config.EosTokenIds.Count > 0 ? config.EosTokenIds : config.EosTokenId is { } eos ? [eos] : [],
    };

    /// <summary>
    /// Reads <c>generation_config.json</c> in <paramref name="directory"/>, or falls back to <see cref="From"/> when there
    /// is none. A malformed file or id is a <see cref="ModelFormatException"/> naming the file and key.
    /// </summary>
    public static GenerationConfig Load(string directory, ModelConfig config)
    {
        var path = Path.Combine(directory, FileName);
        if (!File.Exists(path)) return From(config);
        JsonObject root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new ModelFormatException($"{path}: not a JSON object", path);
        }
        catch (JsonException e)
        {
            throw new ModelFormatException($"{path}: not valid JSON ({e.Message})", path, inner: e);
        }
        List<int> ids = root["eos_token_id"] switch
        {
            null => [],
            JsonValue v when v.GetValueKind() == JsonValueKind.Null => [],
            JsonValue v when v.TryGetValue<int>(out var id) => [id],
            JsonArray a => [.. a.Select((x, i) => x is JsonValue v && v.TryGetValue<int>(out var id) ? id
                : throw new ModelFormatException($"{path}: 'eos_token_id'[{i}] is not an integer token id", path))],
            _ => throw new ModelFormatException($"{path}: 'eos_token_id' is neither a token id nor a list of them", path),
        };
        foreach (var id in ids)
            if ((uint)id >= (uint)config.VocabSize)
                throw new ModelFormatException($"{path}: 'eos_token_id' {id} is outside the vocabulary of {config.VocabSize} (config.json vocab_size)", path);
        return new GenerationConfig { EosTokenIds = ids.Count > 0 ? ids : From(config).EosTokenIds, Raw = root };
    }

    /// <summary>The file to write beside the weights: the keys read, with bos and eos as the model has them.</summary>
    public JsonObject ToJson(ModelConfig config)
    {
        var o = Raw is null ? new JsonObject() : (JsonObject)Raw.DeepClone();
        if (config.BosTokenId is { } bos) o["bos_token_id"] ??= bos;
        if (EosTokenIds.Count == 1 && Raw?["eos_token_id"] is not JsonArray) o["eos_token_id"] = EosTokenIds[0];
        else if (EosTokenIds.Count > 0) o["eos_token_id"] = new JsonArray([.. EosTokenIds.Select(id => (JsonNode)id)]);
        return o;
    }
}

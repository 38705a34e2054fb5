using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AspireTune.Engine.Models;

namespace AspireTune.Engine.Tokenization;

/// <summary>
/// SentencePiece-style BPE as Llama 2, Mistral, TinyLlama and Gemma ship it in tokenizer.json (<c>byte_fallback: true</c>):
/// "▁" (U+2581) marks spaces, characters outside the vocabulary become &lt;0xNN&gt; byte tokens, merges apply by rank.
/// Both spellings load: the older normalizer [Prepend "▁", Replace " " -> "▁"] without a pre-tokenizer, and the
/// newer Metaspace pre-tokenizer (prepend_scheme first/always/never, split true/false). Ids equal Hugging Face
/// tokenizers' (Rust); <see cref="Encode"/> adds no special tokens (<see cref="BosTokenId"/> says what to prepend).
/// </summary>
/// <remarks>
/// Cost: without a pre-tokenizer (or with Metaspace split false) a whole segment between added tokens is one BPE word,
/// so there is no short piece to cap. Merging runs as tokenizers' own Word::merge_all does, on a linked list with a
/// priority queue: O(n log n) time and O(n) memory in the word's length n, whatever the text (a megabyte without a
/// space included), and therefore exact everywhere: nothing is cut where it could change ids, unlike the byte-level
/// tokenizer's <see cref="ByteLevelBpeTokenizer.MaxPieceChars"/> cap for its quadratic loop. A long word is cut only
/// between two characters that no merge joins (read from the merges: before most "▁"), which changes no id, and the
/// pieces under 256 characters are cached.
/// </remarks>
public sealed class SentencePieceBpeTokenizer : ITokenizer
{
    private const int MaxCachedWordChars = 256;

    private readonly Dictionary<string, int> _vocab;
    private readonly string[] _idToToken;
    private readonly short[] _idToByte;
    private readonly Dictionary<long, (int Rank, int Id)> _merges;
    private readonly int[] _byteIds = new int[256];
    private readonly HashSet<long> _junctions = [];
    private readonly HashSet<int> _charTokens = [];
    private readonly int? _unk;
    private readonly bool _fuseUnk;
    private readonly bool _ignoreMerges;
    private readonly SentencePiecePipeline _pipeline;
    private readonly HashSet<int> _added = [];
    private readonly AddedTokenSplitter _rawSplitter;
    private readonly AddedTokenSplitter _normalizedSplitter;
    private readonly WordCache _cache = new();
    private readonly IReadOnlyList<(string Name, byte[] Content)> _sourceFiles;

    private SentencePieceBpeTokenizer(JsonObject root, JsonObject model, string path, string? directory)
    {
        _vocab = TokenizerJson.ReadVocab(model["vocab"], path);
        var added = TokenizerJson.AddedTokens(root, path);
        foreach (var key in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
            if (model[key] is JsonValue v && v.GetValueKind() == JsonValueKind.String && v.GetValue<string>().Length > 0)
                throw new ModelFormatException($"{path}: {key} '{v}' is not supported with byte_fallback BPE", path);
        if (model["dropout"] is JsonValue dv && dv.GetValueKind() == JsonValueKind.Number && dv.GetValue<double>() > 0)
            throw new ModelFormatException($"{path}: BPE dropout is a training-time option and is not supported", path);
        var count = Math.Max(_vocab.Count == 0 ? 0 : _vocab.Values.Max() + 1, added.Count == 0 ? 0 : added.Max(a => a.Id) + 1);
        _idToToken = new string[count];
        foreach (var (t, i) in _vocab)
        {
            _idToToken[i] = t;
            if ((t.Length == 1 && !char.IsSurrogate(t[0])) || (t.Length == 2 && char.IsSurrogatePair(t[0], t[1]))) _charTokens.Add(char.ConvertToUtf32(t, 0));
        }
        foreach (var a in added)
        {
            _idToToken[a.Id] = a.Content;
            _added.Add(a.Id);
        }
        _idToByte = new short[count];
        Array.Fill(_idToByte, (short)-1);
        for (var b = 0; b < 256; b++)
        {
            _byteIds[b] = _vocab.TryGetValue($"<0x{b:X2}>", out var id) ? id : -1;
            if (_byteIds[b] >= 0) _idToByte[_byteIds[b]] = (short)b;
        }
        if (_byteIds.All(id => id < 0))
            throw new ModelFormatException($"{path}: byte_fallback is true but the vocabulary has no <0xNN> byte tokens (<0x00> to <0xFF>)", path);

        if (model["unk_token"] is JsonValue uv && uv.GetValueKind() == JsonValueKind.String)
            _unk = _vocab.TryGetValue(uv.GetValue<string>(), out var u) ? u
                : throw new ModelFormatException($"{path}: unk_token '{uv}' is not in the vocabulary", path);
        if (_unk is null && _byteIds.Any(id => id < 0))
            throw new ModelFormatException(
                $"{path}: the vocabulary lacks <0x{Array.IndexOf(_byteIds, -1):X2}> and there is no unk_token: some text could not be encoded", path);
        _fuseUnk = model["fuse_unk"] is JsonValue fu && fu.GetValueKind() == JsonValueKind.True;
        _ignoreMerges = model["ignore_merges"] is JsonValue im && im.GetValueKind() == JsonValueKind.True;

        var merges = TokenizerJson.ReadMerges(model, path);
        _merges = new Dictionary<long, (int, int)>(merges.Count);
        for (var r = 0; r < merges.Count; r++)
        {
            var (a, b) = merges[r];
            if (a.Length == 0 || b.Length == 0)
                throw new ModelFormatException($"{path}: merge #{r} '{a} {b}' has an empty side", path);
            var ia = VocabId(a, r, merges[r], path);
            var ib = VocabId(b, r, merges[r], path);
            var im2 = VocabId(a + b, r, merges[r], path);
            // A pair listed twice keeps its last rank, as tokenizers' map of merges does.
            _merges[Key(ia, ib)] = (r, im2);
            _junctions.Add(Key(char.ConvertToUtf32(a, char.IsLowSurrogate(a[^1]) && a.Length >= 2 ? a.Length - 2 : a.Length - 1), char.ConvertToUtf32(b, 0)));
        }

        _pipeline = SentencePiecePipeline.Read(root, path);
        _rawSplitter = new AddedTokenSplitter(added.Where(a => !a.Normalized || !_pipeline.HasNormalizer).Select(a => (a.Content, a)));
        _normalizedSplitter = new AddedTokenSplitter(added.Where(a => a.Normalized && _pipeline.HasNormalizer).Select(a => (_pipeline.Normalize(a.Content), a)));

        var special = TokenizerJson.Ids(added);
        var (bos, eos, files) = TokenizerJson.ConfigAndFiles(root, path, directory, special, "tokenizer.model");
        BosTokenId = bos;
        EosTokenId = eos ?? (special.TryGetValue("</s>", out var e) ? e : null);
        _sourceFiles = files;
    }

    private int VocabId(string token, int rank, (string, string) merge, string path) =>
        _vocab.TryGetValue(token, out var id) ? id
            : throw new ModelFormatException($"{path}: merge #{rank} '{merge.Item1} {merge.Item2}' names '{token}', which is not in the vocabulary", path);

    private static long Key(int a, int b) => ((long)a << 32) | (uint)b;

    public int Count => _idToToken.Length;
    public int? EosTokenId { get; }
    public int? BosTokenId { get; }

    /// <summary>Reads a byte_fallback BPE tokenizer.json; tokenizer_config.json beside it (in <paramref name="directory"/>) names bos/eos.</summary>
    public static SentencePieceBpeTokenizer FromTokenizerJson(string path, string? directory = null) =>
        FromTokenizerJson(TokenizerJson.Parse(path), path, directory);

    internal static SentencePieceBpeTokenizer FromTokenizerJson(JsonObject root, string path, string? directory)
    {
        if (!TokenizerJson.IsByteFallback(root, path))
            throw new ModelFormatException($"{path}: not a byte_fallback BPE model: load it with {nameof(TokenizerFiles)}.{nameof(TokenizerFiles.TryLoad)}", path);
        return new SentencePieceBpeTokenizer(root, TokenizerJson.BpeModel(root, path), path, directory);
    }

    public IReadOnlyList<int> Encode(string text) => EncodeText(text, continuation: false);

    /// <summary>
    /// The tail of the whole text's ids when they start with the prompt's; when a merge crosses the boundary (a prompt
    /// ending in a space), the completion encoded as a continuation: no "▁" prepended to its start.
    /// </summary>
    public IReadOnlyList<int> EncodeCompletion(string prompt, string completion)
    {
        var p = Encode(prompt);
        var whole = Encode(prompt + completion);
        return whole.Count >= p.Count && whole.Take(p.Count).SequenceEqual(p) ? [.. whole.Skip(p.Count)] : EncodeText(completion, continuation: true);
    }

    private List<int> EncodeText(string text, bool continuation)
    {
        var ids = new List<int>();
        foreach (var (start, length, token) in _rawSplitter.Split(text))
        {
            if (token is not null)
            {
                ids.Add(token.Id);
                continue;
            }
            // Each segment between added tokens is normalized on its own, as tokenizers does (the Prepend normalizer
            // puts a "▁" before every one of them).
            var normalized = _pipeline.Normalize(text.Substring(start, length), prepend: !(continuation && start == 0));
            var first = true;
            foreach (var (s, l, t) in _normalizedSplitter.Split(normalized))
            {
                if (t is not null)
                    ids.Add(t.Id);
                else
                    foreach (var word in _pipeline.Words(normalized.Substring(s, l), start == 0 && first, prepend: !(continuation && start == 0 && first)))
                        AddWord(word, ids);
                first = false;
            }
        }
        return ids;
    }

    private void AddWord(string word, List<int> ids)
    {
        if (word.Length < MaxCachedWordChars)
        {
            ids.AddRange(_cache.GetOrAdd(word, EncodeWord));
            return;
        }
        // A long word (a whole segment, without a splitting pre-tokenizer) is cut where no merge can join its two
        // sides: BPE on each side then gives exactly the ids of the whole, and the short pieces hit the cache.
        var start = 0;
        for (var i = 1; i < word.Length; i++)
        {
            if (char.IsLowSurrogate(word[i]) || !Independent(word, i)) continue;
            AddPiece(word[start..i], ids);
            start = i;
        }
        AddPiece(word[start..], ids);
    }

    private void AddPiece(string piece, List<int> ids) =>
        ids.AddRange(piece.Length < MaxCachedWordChars ? _cache.GetOrAdd(piece, EncodeWord) : EncodeWord(piece));

    /// <summary>
    /// Whether no merge can ever join the characters on the two sides of <paramref name="at"/>: both are tokens of their
    /// own (not byte-fallback or unknown) and no merge (a, b) has a ending in the left one and b starting with the right.
    /// </summary>
    private bool Independent(string word, int at)
    {
        var left = char.IsLowSurrogate(word[at - 1]) && at >= 2 ? char.ConvertToUtf32(word[at - 2], word[at - 1]) : word[at - 1];
        var right = char.IsHighSurrogate(word[at]) && at + 1 < word.Length ? char.ConvertToUtf32(word[at], word[at + 1]) : word[at];
        return _charTokens.Contains(left) && _charTokens.Contains(right) && !_junctions.Contains(Key(left, right));
    }

    /// <summary>tokenizers' BPE::merge_word and Word::merge_all: characters (or their byte tokens), then merges by rank, leftmost first.</summary>
    private int[] EncodeWord(string word)
    {
        if (word.Length == 0) return [];
        if (_ignoreMerges && _vocab.TryGetValue(word, out var whole)) return [whole];
        var ids = new List<int>(word.Length);
        var pendingUnk = false;
        Span<byte> utf8 = stackalloc byte[4];
        for (var i = 0; i < word.Length; i++)
        {
            var len = char.IsHighSurrogate(word[i]) && i + 1 < word.Length && char.IsLowSurrogate(word[i + 1]) ? 2 : 1;
            var ch = word.Substring(i, len);
            i += len - 1;
            if (_vocab.TryGetValue(ch, out var id))
            {
                ids.Add(id);
                pendingUnk = false;
                continue;
            }
            var n = Encoding.UTF8.GetBytes(ch, utf8);
            var bytes = utf8[..n];
            var all = true;
            foreach (var b in bytes) all &= _byteIds[b] >= 0;
            if (all)
            {
                foreach (var b in bytes) ids.Add(_byteIds[b]);
                pendingUnk = false;
                continue;
            }
            // Loading guarantees an unk token whenever a byte token is missing; fuse_unk makes a run of unknowns one.
            if (!(_fuseUnk && pendingUnk)) ids.Add(_unk!.Value);
            pendingUnk = true;
        }
        return Merge(ids);
    }

    private int[] Merge(List<int> symbols)
    {
        var n = symbols.Count;
        if (n < 2) return [.. symbols];
        var id = symbols.ToArray();
        var next = new int[n];
        var prev = new int[n];
        var alive = new bool[n];
        for (var i = 0; i < n; i++) (next[i], prev[i], alive[i]) = (i + 1 < n ? i + 1 : -1, i - 1, true);
        var queue = new PriorityQueue<(int Pos, int NewId), long>();
        void Push(int pos)
        {
            if (pos >= 0 && next[pos] >= 0 && _merges.TryGetValue(Key(id[pos], id[next[pos]]), out var m))
                queue.Enqueue((pos, m.Id), ((long)m.Rank << 32) | (uint)pos);
        }
        for (var i = 0; i < n - 1; i++) Push(i);
        while (queue.TryDequeue(out var top, out _))
        {
            var (pos, newId) = top;
            // Stale entries (a side merged since) are skipped, as merge_all does.
            if (!alive[pos] || next[pos] < 0 || !_merges.TryGetValue(Key(id[pos], id[next[pos]]), out var m) || m.Id != newId) continue;
            var right = next[pos];
            id[pos] = newId;
            alive[right] = false;
            next[pos] = next[right];
            if (next[pos] >= 0) prev[next[pos]] = pos;
            Push(prev[pos]);
            Push(pos);
        }
        var result = new List<int>();
        for (var i = 0; i >= 0; i = next[i]) result.Add(id[i]);
        return [.. result];
    }

    public byte[] TokenBytes(int id)
    {
        if (!Defines(id)) return [];
        var token = Token(id);
        if (_added.Contains(id)) return Encoding.UTF8.GetBytes(token);
        if (_idToByte[id] >= 0) return [(byte)_idToByte[id]];
        return Encoding.UTF8.GetBytes(_pipeline.DecodeContinuation(token));
    }

    /// <summary>As tokenizers' decode (special tokens kept): the decoders over the token strings, e.g. the first space stripped.</summary>
    /// <summary>As tokenizers' decode, which skips ids no token has (a model's padded embedding rows).</summary>
    public string Decode(IEnumerable<int> ids) => _pipeline.Decode([.. ids.Where(Defines).Select(Token)]);

    private bool Defines(int id) => (uint)id < (uint)_idToToken.Length && _idToToken[id] is not null;

    private string Token(int id) => _idToToken[id];

    /// <summary>Copies the files it was read from (tokenizer.json, tokenizer_config.json, special_tokens_map.json, tokenizer.model).</summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        foreach (var (name, content) in _sourceFiles) File.WriteAllBytes(Path.Combine(directory, name), content);
    }
}

using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using AspireTune.Engine.Models;

namespace AspireTune.Engine.Tokenization;

/// <summary>
/// The text steps around a byte_fallback BPE model, as Hugging Face tokenizers runs them: the normalizers
/// (Sequence, Prepend, Replace, NFC/NFD/NFKC/NFKD), the Metaspace pre-tokenizer and the decoders (Sequence, Replace,
/// ByteFallback, Fuse, Strip, Metaspace). Anything else in tokenizer.json is refused when it is read.
/// </summary>
internal sealed class SentencePiecePipeline
{
    public const char Metaspace = '\u2581';

    private readonly List<(bool Prepends, Func<string, string> Apply)> _normalizers = [];
    private readonly List<JsonObject> _decoders = [];

    private SentencePiecePipeline() { }

    public bool HasNormalizer => _normalizers.Count > 0;

    /// <summary>The Metaspace pre-tokenizer's settings, or null without a pre-tokenizer (the segment is one word).</summary>
    public (char Replacement, string Scheme, bool Split)? PreTokenizer { get; private set; }

    public static SentencePiecePipeline Read(JsonObject root, string path)
    {
        var p = new SentencePiecePipeline();
        p.ReadNormalizer(root["normalizer"], path);
        p.ReadPreTokenizer(root["pre_tokenizer"], path);
        p.ReadDecoder(root["decoder"], path);
        return p;
    }

    /// <summary>The normalizers in order; without <paramref name="prepend"/> (a continuation) Prepend steps are skipped.</summary>
    public string Normalize(string text, bool prepend = true)
    {
        foreach (var (prepends, apply) in _normalizers)
            if (prepend || !prepends) text = apply(text);
        return text;
    }

    /// <summary>
    /// The words of one segment (text between added tokens) that BPE encodes; <paramref name="atStart"/> says whether the
    /// segment starts the input (Metaspace's prepend_scheme "first"); without <paramref name="prepend"/> (a continuation)
    /// nothing is prepended.
    /// </summary>
    public IEnumerable<string> Words(string segment, bool atStart, bool prepend = true)
    {
        if (PreTokenizer is not { } m)
        {
            yield return segment;
            yield break;
        }
        var text = segment.Replace(' ', m.Replacement);
        if (prepend && !text.StartsWith(m.Replacement) && (m.Scheme == "always" || (m.Scheme == "first" && atStart)))
            text = m.Replacement + text;
        if (!m.Split)
        {
            yield return text;
            yield break;
        }
        // MergedWithNext: every replacement character starts a word.
        var start = 0;
        for (var i = 1; i < text.Length; i++)
            if (text[i] == m.Replacement)
            {
                yield return text[start..i];
                start = i;
            }
        if (text.Length > start) yield return text[start..];
    }

    /// <summary>The decoders over the token strings, then concatenated (tokenizers' decode).</summary>
    public string Decode(List<string> tokens)
    {
        foreach (var d in _decoders) tokens = DecodeStep(d, tokens);
        return string.Concat(tokens);
    }

    /// <summary>
    /// One token's bytes when it continues a text (streaming): the per-token decoders only (Replace, and Metaspace as
    /// for a token that is not first); Strip and Fuse act on whole texts. Byte tokens are handled by the caller.
    /// </summary>
    public string DecodeContinuation(string token)
    {
        foreach (var d in _decoders)
            token = (string)d["type"]! switch
            {
                "Replace" => token.Replace((string)d["pattern"]!["String"]!, (string)d["content"]!, StringComparison.Ordinal),
                "Metaspace" => token.Replace(Replacement(d), ' '),
                _ => token,
            };
        return token;
    }

    private static List<string> DecodeStep(JsonObject d, List<string> tokens)
    {
        switch ((string)d["type"]!)
        {
            case "Replace":
                var from = (string)d["pattern"]!["String"]!;
                var to = (string)d["content"]!;
                return [.. tokens.Select(t => t.Replace(from, to, StringComparison.Ordinal))];
            case "Fuse":
                return [string.Concat(tokens)];
            case "Strip":
                var content = ((string)d["content"]!)[0];
                var (start, stop) = ((int?)d["start"] ?? 0, (int?)d["stop"] ?? 0);
                return [.. tokens.Select(t => Strip(t, content, start, stop))];
            case "Metaspace":
                // As tokenizers (Rust) does it: every replacement character of the first token is dropped, not only
                // a leading one, unless prepend_scheme is "never".
                var r = Replacement(d);
                var dropFirst = Scheme(d) != "never";
                return [.. tokens.Select((t, i) => i == 0 && dropFirst ? t.Replace(r.ToString(), "", StringComparison.Ordinal) : t.Replace(r, ' '))];
            default:
                return ByteFallback(tokens);
        }
    }

    private static string Strip(string token, char content, int start, int stop)
    {
        var a = 0;
        while (a < start && a < token.Length && token[a] == content) a++;
        var b = token.Length;
        while (token.Length - b < stop && b > a && token[b - 1] == content) b--;
        return token[a..b];
    }

    /// <summary>Runs of &lt;0xNN&gt; tokens become their UTF-8 text, or one U+FFFD per byte when the run is not valid UTF-8.</summary>
    private static List<string> ByteFallback(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        var run = new List<byte>();
        var strict = new UTF8Encoding(false, throwOnInvalidBytes: true);
        void Flush()
        {
            if (run.Count == 0) return;
            try
            {
                result.Add(strict.GetString(run.ToArray()));
            }
            catch (DecoderFallbackException)
            {
                result.AddRange(Enumerable.Repeat("\uFFFD", run.Count));
            }
            run.Clear();
        }
        foreach (var t in tokens)
        {
            if (ByteToken(t) is { } b)
            {
                run.Add(b);
                continue;
            }
            Flush();
            result.Add(t);
        }
        Flush();
        return result;
    }

    /// <summary>The byte of a &lt;0xNN&gt; token, as tokenizers' ByteFallback reads it; null for any other token.</summary>
    public static byte? ByteToken(string token) =>
        token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
        && byte.TryParse(token.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out var b) ? b : null;

    private static char Replacement(JsonObject o) => o["replacement"] is JsonValue v && v.GetValue<string>() is { Length: 1 } s ? s[0] : Metaspace;

    private void ReadNormalizer(JsonNode? node, string path)
    {
        if (node is null) return;
        var o = node as JsonObject ?? throw new ModelFormatException($"{path}: normalizer is not an object", path);
        switch (TypeOf(o, "normalizer", path))
        {
            case "Sequence":
                foreach (var n in o["normalizers"] as JsonArray ?? throw new ModelFormatException($"{path}: normalizer Sequence has no 'normalizers'", path))
                    ReadNormalizer(n, path);
                break;
            case "Prepend":
                var prepend = Str(o, "prepend", "normalizer Prepend", path);
                _normalizers.Add((true, s => s.Length == 0 ? s : prepend + s));
                break;
            case "Replace":
                var (from, to) = (StringPattern(o, "normalizer", path), Str(o, "content", "normalizer Replace", path));
                _normalizers.Add((false, s => s.Replace(from, to, StringComparison.Ordinal)));
                break;
            case "NFC": _normalizers.Add((false, s => s.Normalize(NormalizationForm.FormC))); break;
            case "NFD": _normalizers.Add((false, s => s.Normalize(NormalizationForm.FormD))); break;
            case "NFKC": _normalizers.Add((false, s => s.Normalize(NormalizationForm.FormKC))); break;
            case "NFKD": _normalizers.Add((false, s => s.Normalize(NormalizationForm.FormKD))); break;
            case var t:
                throw new ModelFormatException($"{path}: normalizer '{t}' is not supported with byte_fallback BPE (Sequence, Prepend, Replace, NFC, NFD, NFKC, NFKD)", path);
        }
    }

    private void ReadPreTokenizer(JsonNode? node, string path)
    {
        if (node is null) return;
        var o = node as JsonObject ?? throw new ModelFormatException($"{path}: pre_tokenizer is not an object", path);
        var type = TypeOf(o, "pre_tokenizer", path);
        if (type == "Sequence" && o["pretokenizers"] is JsonArray { Count: 1 } one)
        {
            ReadPreTokenizer(one[0], path);
            return;
        }
        if (type != "Metaspace")
            throw new ModelFormatException($"{path}: pre_tokenizer '{type}' is not supported with byte_fallback BPE (none or Metaspace)", path);
        var scheme = Scheme(o);
        if (scheme is not ("first" or "always" or "never"))
            throw new ModelFormatException($"{path}: Metaspace prepend_scheme '{scheme}' is not first, always or never", path);
        var split = o["split"] is not JsonValue sv || sv.GetValueKind() != JsonValueKind.False;
        PreTokenizer = (Replacement(o), scheme, split);
    }

    private void ReadDecoder(JsonNode? node, string path)
    {
        if (node is null) return;
        var o = node as JsonObject ?? throw new ModelFormatException($"{path}: decoder is not an object", path);
        switch (TypeOf(o, "decoder", path))
        {
            case "Sequence":
                foreach (var d in o["decoders"] as JsonArray ?? throw new ModelFormatException($"{path}: decoder Sequence has no 'decoders'", path))
                    ReadDecoder(d, path);
                return;
            case "Replace":
                StringPattern(o, "decoder", path);
                Str(o, "content", "decoder Replace", path);
                break;
            case "Strip":
                if (Str(o, "content", "decoder Strip", path).Length != 1)
                    throw new ModelFormatException($"{path}: decoder Strip 'content' must be one character", path);
                break;
            case "ByteFallback" or "Fuse" or "Metaspace":
                break;
            case var t:
                throw new ModelFormatException($"{path}: decoder '{t}' is not supported with byte_fallback BPE (Sequence, Replace, ByteFallback, Fuse, Strip, Metaspace)", path);
        }
        _decoders.Add(o);
    }

    /// <summary>Older files spell the scheme as add_prefix_space (true: always, false: never).</summary>
    private static string Scheme(JsonObject o) =>
        (string?)o["prepend_scheme"] ?? (o["add_prefix_space"] is JsonValue ap && ap.GetValueKind() == JsonValueKind.False ? "never" : "always");

    private static string TypeOf(JsonObject o, string what, string path) =>
        o["type"] is JsonValue t && t.GetValueKind() == JsonValueKind.String ? t.GetValue<string>() : throw new ModelFormatException($"{path}: {what} has no 'type'", path);

    private static string Str(JsonObject o, string name, string what, string path) =>
        o[name] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : throw new ModelFormatException($"{path}: {what} needs a string '{name}'", path);

    private static string StringPattern(JsonObject o, string what, string path) =>
        o["pattern"] is JsonObject p && p["String"] is JsonValue v && v.GetValueKind() == JsonValueKind.String && v.GetValue<string>().Length > 0
            ? v.GetValue<string>()
            : throw new ModelFormatException($"{path}: {what} Replace supports a non-empty String pattern only", path);
}

/// <summary>
/// Finds added tokens in text as tokenizers does: leftmost-longest, single_word tokens only between non-word
/// characters, lstrip/rstrip taking the whitespace beside them.
/// </summary>
internal sealed class AddedTokenSplitter
{
    private readonly Regex? _regex;
    private readonly Dictionary<string, AddedToken> _byText;

    public AddedTokenSplitter(IEnumerable<(string Text, AddedToken Token)> tokens)
    {
        _byText = new Dictionary<string, AddedToken>(StringComparer.Ordinal);
        foreach (var (text, token) in tokens)
            if (text.Length > 0) _byText.TryAdd(text, token);
        if (_byText.Count > 0)
            _regex = new Regex(string.Join("|", _byText.Keys.OrderByDescending(k => k.Length).Select(Regex.Escape)), RegexOptions.CultureInvariant);
    }

    /// <summary>Pieces of <paramref name="text"/> in order: (start, length, token) with token null for plain text.</summary>
    public List<(int Start, int Length, AddedToken? Token)> Split(string text)
    {
        var pieces = new List<(int, int, AddedToken?)>();
        var done = 0;
        for (var m = _regex?.Match(text); m is { Success: true }; m = m.NextMatch())
        {
            var token = _byText[m.Value];
            var (start, stop) = (m.Index, m.Index + m.Length);
            if (start < done) continue;
            if (token.SingleWord && ((start > 0 && IsWord(text[start - 1])) || (stop < text.Length && IsWord(text[stop])))) continue;
            if (token.LStrip)
                while (start > done && char.IsWhiteSpace(text[start - 1])) start--;
            if (token.RStrip)
                while (stop < text.Length && char.IsWhiteSpace(text[stop])) stop++;
            if (start > done) pieces.Add((done, start - done, null));
            pieces.Add((start, stop - start, token));
            done = stop;
        }
        if (done < text.Length) pieces.Add((done, text.Length - done, null));
        return pieces;
    }

    private static bool IsWord(char c) => char.IsLetterOrDigit(c) || c == '_';
}

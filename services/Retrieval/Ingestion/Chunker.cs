using System.Text;
using Microsoft.ML.Tokenizers;

namespace AspireTune.Retrieval.Ingestion;

/// <summary>
/// Paragraph-aware chunking measured in cl100k tokens: paragraphs are packed whole into chunks of at most
/// <c>size</c> tokens, each chunk starting with the last <c>overlap</c> tokens of the previous one; a paragraph larger
/// than a chunk is cut into overlapping token windows. Markdown headings stay with the paragraph under them.
/// </summary>
public static class Chunker
{
    private static readonly Lazy<Tokenizer> SharedTokenizer = new(() => TiktokenTokenizer.CreateForEncoding("cl100k_base"));

    /// <summary>
    /// Longest run of one character class (letters, digits, white space, other) handed to BPE as one piece. BPE on a
    /// pre-token costs quadratic time in its length, so a megabyte without spaces would take minutes; runs longer
    /// than this are cut, which changes token ids only inside such runs and keeps tokenization linear.
    /// </summary>
    public const int MaxPreTokenChars = 256;

    private static Tokenizer Tokenizer => SharedTokenizer.Value;

    public static int CountTokens(string text)
    {
        var count = 0;
        foreach (var segment in Segments(text))
            count += Tokenizer.CountTokens(segment.Span);
        return count;
    }

    public static List<int> EncodeToIds(string text)
    {
        var ids = new List<int>();
        foreach (var segment in Segments(text))
            ids.AddRange(Tokenizer.EncodeToIds(segment.Span));
        return ids;
    }

    public static string Decode(IEnumerable<int> ids) => Tokenizer.Decode(ids);

    /// <summary>The text in pieces, cut only inside runs of one character class longer than <see cref="MaxPreTokenChars"/>.</summary>
    internal static IEnumerable<ReadOnlyMemory<char>> Segments(string text)
    {
        var start = 0;
        var run = 0;
        var previous = -1;
        for (var i = 0; i < text.Length; i++)
        {
            var kind = char.IsLetter(text, i) ? 0 : char.IsDigit(text, i) ? 1 : char.IsWhiteSpace(text[i]) ? 2 : 3;
            run = kind == previous ? run + 1 : 1;
            previous = kind;
            // Never between the halves of a surrogate pair.
            if (run > MaxPreTokenChars && !char.IsLowSurrogate(text[i]))
            {
                yield return text.AsMemory(start, i - start);
                start = i;
                run = 1;
            }
        }
        if (start < text.Length)
            yield return text.AsMemory(start);
    }

    /// <summary>The chunks of a text; <paramref name="ct"/> is checked per paragraph and per window (a request's budget ends a long text's chunking).</summary>
    public static List<string> Chunk(string text, DocumentFormat format, int size, int overlap, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 8);
        overlap = Math.Clamp(overlap, 0, size / 2);
        var chunks = new List<string>();
        var current = new StringBuilder();
        var currentTokens = 0;

        void Flush()
        {
            if (currentTokens == 0)
                return;
            var chunk = current.ToString().Trim();
            chunks.Add(chunk);
            current.Clear();
            currentTokens = 0;
            if (overlap > 0)
            {
                var ids = EncodeToIds(chunk);
                if (ids.Count > overlap)
                {
                    current.Append(Decode(ids.Skip(ids.Count - overlap))).Append(' ');
                    currentTokens = overlap;
                }
            }
        }

        foreach (var paragraph in Paragraphs(text, format))
        {
            ct.ThrowIfCancellationRequested();
            var tokens = CountTokens(paragraph);
            if (tokens > size)
            {
                Flush();
                var ids = EncodeToIds(paragraph);
                for (var start = 0; start < ids.Count; start += size - overlap)
                {
                    ct.ThrowIfCancellationRequested();
                    chunks.Add(Decode(ids.Skip(start).Take(size)).Trim());
                    if (start + size >= ids.Count)
                        break;
                }
                current.Clear();
                currentTokens = 0;
                continue;
            }
            if (currentTokens + tokens > size)
                Flush();
            current.Append(paragraph).Append("\n\n");
            currentTokens += tokens;
        }
        // The overlap carried into an empty remainder is not a chunk of its own.
        if (current.Length > 0 && (chunks.Count == 0 || currentTokens > overlap))
            chunks.Add(current.ToString().Trim());
        return chunks.Where(c => c.Length > 0).ToList();
    }

    internal static IEnumerable<string> Paragraphs(string text, DocumentFormat format)
    {
        var lines = text.Replace("\r\n", "\n").Split('\n');
        var paragraph = new StringBuilder();
        string? heading = null;
        foreach (var raw in lines)
        {
            var line = raw.TrimEnd();
            var isHeading = format == DocumentFormat.Markdown && line.TrimStart().StartsWith('#');
            if (line.Length == 0 || isHeading)
            {
                if (paragraph.Length > 0)
                {
                    yield return (heading is null ? "" : heading + "\n") + paragraph.ToString().Trim();
                    heading = null;
                    paragraph.Clear();
                }
                if (isHeading)
                    heading = heading is null ? line : heading + "\n" + line;
                continue;
            }
            paragraph.Append(line).Append('\n');
        }
        if (paragraph.Length > 0)
            yield return (heading is null ? "" : heading + "\n") + paragraph.ToString().Trim();
        else if (heading is not null)
            yield return heading;
    }
}

/// <summary>How a document's text is split: plain text, Markdown (headings start sections), or JSONL records.</summary>
public enum DocumentFormat
{
    Text,
    Markdown,
    Jsonl,
}

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

    public static Tokenizer Tokenizer => SharedTokenizer.Value;

    public static int CountTokens(string text) => Tokenizer.CountTokens(text);

    public static List<string> Chunk(string text, DocumentFormat format, int size, int overlap)
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
                var ids = Tokenizer.EncodeToIds(chunk);
                if (ids.Count > overlap)
                {
                    current.Append(Tokenizer.Decode(ids.Skip(ids.Count - overlap))).Append(' ');
                    currentTokens = overlap;
                }
            }
        }

        foreach (var paragraph in Paragraphs(text, format))
        {
            var tokens = CountTokens(paragraph);
            if (tokens > size)
            {
                Flush();
                var ids = Tokenizer.EncodeToIds(paragraph);
                for (var start = 0; start < ids.Count; start += size - overlap)
                {
                    chunks.Add(Tokenizer.Decode(ids.Skip(start).Take(size)).Trim());
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

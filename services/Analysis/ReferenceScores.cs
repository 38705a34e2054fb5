using System.Text;
using System.Text.Json;

namespace AspireTune.Analysis;

/// <summary>
/// How an answer scores against its reference answer (generation tasks): exact match, SQuAD-style token F1, ROUGE-L
/// and JSON field match, each in [0, 1]. The one implementation: Evaluation's scorers (<c>exact</c>, <c>token-f1</c>,
/// <c>rouge-l</c>, <c>json-fields</c>) and Comparison's kNN baseline, whose answers no model gives, both score here.
/// </summary>
public static class ReferenceScores
{
    /// <summary>The metric names, as runs and reports carry them.</summary>
    public const string Exact = "exact", TokenF1 = "token_f1", RougeL = "rouge_l", JsonFields = "json_fields";

    /// <summary>
    /// Longest texts compared, in words: ROUGE-L is quadratic in length, so longer outputs and references are cut here
    /// (4,096 x 4,096 cells is about 17 M steps; a summary or answer is far shorter).
    /// </summary>
    public const int MaxWords = 4096;

    /// <summary>Lower case, punctuation dropped, whitespace collapsed: "The  Answer!" and "the answer" agree.</summary>
    public static string Normalize(string text)
    {
        var builder = new StringBuilder(text.Length);
        var space = false;
        foreach (var c in text.Trim())
        {
            if (char.IsWhiteSpace(c))
                space = builder.Length > 0;
            else if (char.IsLetterOrDigit(c))
            {
                if (space)
                    builder.Append(' ');
                space = false;
                builder.Append(char.ToLowerInvariant(c));
            }
        }
        return builder.ToString();
    }

    /// <summary>Strips a Markdown code fence around JSON, as chat models often add one.</summary>
    public static string StripFence(string output)
    {
        var text = output.Trim();
        if (!text.StartsWith("```", StringComparison.Ordinal))
            return text;
        var firstNewline = text.IndexOf('\n');
        var last = text.LastIndexOf("```", StringComparison.Ordinal);
        return firstNewline > 0 && last > firstNewline ? text[(firstNewline + 1)..last].Trim() : text;
    }

    /// <summary>1 when the answer is the reference (surrounding whitespace aside), else 0.</summary>
    public static double ExactMatch(string output, string reference) => string.Equals(output.Trim(), reference.Trim(), StringComparison.Ordinal) ? 1 : 0;

    /// <summary>SQuAD-style token F1: the bag-of-words overlap of the normalized answer and reference.</summary>
    public static double TokenOverlapF1(string output, string reference)
    {
        var predicted = Words(output);
        var expected = Words(reference);
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var word in expected)
            counts[word] = counts.GetValueOrDefault(word) + 1;
        var overlap = 0;
        foreach (var word in predicted)
            if (counts.TryGetValue(word, out var left) && left > 0)
            {
                counts[word] = left - 1;
                overlap++;
            }
        return F1(overlap, predicted.Length, expected.Length);
    }

    /// <summary>ROUGE-L F1: the longest common subsequence of normalized words, as precision and recall against the reference.</summary>
    public static double RougeLF1(string output, string reference, CancellationToken ct = default)
    {
        var predicted = Words(output);
        var expected = Words(reference);
        return F1(Lcs(predicted, expected, ct), predicted.Length, expected.Length);
    }

    /// <summary>
    /// Extraction to JSON: the share of the reference object's fields (nested paths included) whose values the answer's
    /// JSON object repeats. Strings compare normalized (case, punctuation, spacing), numbers by value, the rest exactly.
    /// An answer that is not JSON scores 0; null when the reference is not a JSON object (nothing to compare with).
    /// </summary>
    public static double? JsonFieldMatch(string output, string reference)
    {
        if (Parse(reference) is not { ValueKind: JsonValueKind.Object } expected)
            return null;
        var leaves = new List<(string Path, JsonElement Value)>();
        Flatten(expected, "$", leaves);
        if (Parse(StripFence(output)) is not { } answer)
            return 0;
        if (leaves.Count == 0)
            return answer.ValueKind == JsonValueKind.Object ? 1 : 0;
        return (double)leaves.Count(leaf => Find(answer, leaf.Path) is { } value && Same(value, leaf.Value)) / leaves.Count;
    }

    private static string[] Words(string text)
    {
        var words = Normalize(text).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return words.Length > MaxWords ? words[..MaxWords] : words;
    }

    private static double F1(int overlap, int predicted, int reference)
    {
        if (predicted == 0 && reference == 0)
            return 1;
        if (overlap == 0)
            return 0;
        var precision = (double)overlap / predicted;
        var recall = (double)overlap / reference;
        return 2 * precision * recall / (precision + recall);
    }

    private static int Lcs(string[] a, string[] b, CancellationToken ct)
    {
        // Two rows of the dynamic programme: memory linear in the shorter text.
        if (b.Length > a.Length)
            (a, b) = (b, a);
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var i = 1; i <= a.Length; i++)
        {
            if ((i & 255) == 0)
                ct.ThrowIfCancellationRequested();
            for (var j = 1; j <= b.Length; j++)
                current[j] = string.Equals(a[i - 1], b[j - 1], StringComparison.Ordinal) ? previous[j - 1] + 1 : Math.Max(previous[j], current[j - 1]);
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }

    private static JsonElement? Parse(string text)
    {
        try
        {
            using var doc = JsonDocument.Parse(text);
            return doc.RootElement.Clone();
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static void Flatten(JsonElement element, string path, List<(string, JsonElement)> leaves)
    {
        if (element.ValueKind == JsonValueKind.Object && element.EnumerateObject().Any())
            foreach (var property in element.EnumerateObject())
                Flatten(property.Value, path + "." + property.Name, leaves);
        else
            leaves.Add((path, element));
    }

    private static JsonElement? Find(JsonElement root, string path)
    {
        var current = root;
        foreach (var name in path.Split('.').Skip(1))
        {
            if (current.ValueKind != JsonValueKind.Object || !current.TryGetProperty(name, out var next))
                return null;
            current = next;
        }
        return current;
    }

    private static bool Same(JsonElement a, JsonElement b) => (a.ValueKind, b.ValueKind) switch
    {
        (JsonValueKind.String, JsonValueKind.String) => Normalize(a.GetString()!) == Normalize(b.GetString()!),
        (JsonValueKind.Number, JsonValueKind.Number) => a.GetDouble() == b.GetDouble(),
        (JsonValueKind.Array, JsonValueKind.Array) => a.GetArrayLength() == b.GetArrayLength() && a.EnumerateArray().Zip(b.EnumerateArray()).All(p => Same(p.First, p.Second)),
        _ => JsonElement.DeepEquals(a, b),
    };
}

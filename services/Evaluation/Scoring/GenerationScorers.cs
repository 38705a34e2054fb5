using System.Text.Json;

namespace AspireTune.Evaluation.Scoring;

/// <summary>Scorers for generation tasks with a reference answer: token overlap, longest common subsequence, JSON fields.</summary>
internal static class ReferenceTokens
{
    /// <summary>
    /// Longest texts compared, in words: ROUGE-L is quadratic in length, so longer outputs and references are cut here
    /// (4,096 x 4,096 cells is about 17 M steps; a summary or answer is far shorter).
    /// </summary>
    public const int MaxWords = 4096;

    public static string[] Words(string text)
    {
        var words = Scorer.Normalize(text).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return words.Length > MaxWords ? words[..MaxWords] : words;
    }

    public static double F1(int overlap, int predicted, int reference)
    {
        if (predicted == 0 && reference == 0)
            return 1;
        if (overlap == 0)
            return 0;
        var precision = (double)overlap / predicted;
        var recall = (double)overlap / reference;
        return 2 * precision * recall / (precision + recall);
    }
}

/// <summary>SQuAD-style token F1: the bag-of-words overlap of the normalized output and reference.</summary>
internal sealed class TokenF1Scorer : Scorer
{
    public override string Name => "token_f1";

    public override ValueTask ScoreAsync(ScoreInput input, ScoreResult result, CancellationToken ct)
    {
        var predicted = ReferenceTokens.Words(input.Output);
        var reference = ReferenceTokens.Words(input.Expected!);
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var word in reference)
            counts[word] = counts.GetValueOrDefault(word) + 1;
        var overlap = 0;
        foreach (var word in predicted)
            if (counts.TryGetValue(word, out var left) && left > 0)
            {
                counts[word] = left - 1;
                overlap++;
            }
        result.Scores[Name] = ReferenceTokens.F1(overlap, predicted.Length, reference.Length);
        return ValueTask.CompletedTask;
    }
}

/// <summary>ROUGE-L F1: the longest common subsequence of normalized words, as precision and recall against the reference.</summary>
internal sealed class RougeLScorer : Scorer
{
    public override string Name => "rouge_l";

    public override ValueTask ScoreAsync(ScoreInput input, ScoreResult result, CancellationToken ct)
    {
        var predicted = ReferenceTokens.Words(input.Output);
        var reference = ReferenceTokens.Words(input.Expected!);
        result.Scores[Name] = ReferenceTokens.F1(Lcs(predicted, reference, ct), predicted.Length, reference.Length);
        return ValueTask.CompletedTask;
    }

    internal static int Lcs(string[] a, string[] b, CancellationToken ct)
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
}

/// <summary>
/// Extraction to JSON: the share of the reference object's fields (nested paths included) whose values the output's
/// JSON object repeats. Strings compare normalized (case, punctuation, spacing), numbers by value, the rest exactly.
/// An output that is not JSON scores 0; an expected answer that is not a JSON object is an error of the item.
/// </summary>
internal sealed class JsonFieldsScorer : Scorer
{
    public override string Name => "json_fields";

    public override ValueTask ScoreAsync(ScoreInput input, ScoreResult result, CancellationToken ct)
    {
        if (Parse(input.Expected!) is not { ValueKind: JsonValueKind.Object } reference)
        {
            result.Errors.Add($"json_fields: expected '{NumericScorer.Truncate(input.Expected)}' is not a JSON object");
            return ValueTask.CompletedTask;
        }
        var leaves = new List<(string Path, JsonElement Value)>();
        Flatten(reference, "$", leaves);
        if (Parse(StripFence(input.Output)) is not { } output)
        {
            result.Scores[Name] = 0;
            return ValueTask.CompletedTask;
        }
        if (leaves.Count == 0)
        {
            result.Scores[Name] = output.ValueKind == JsonValueKind.Object ? 1 : 0;
            return ValueTask.CompletedTask;
        }
        var matched = leaves.Count(leaf => Find(output, leaf.Path) is { } value && Same(value, leaf.Value));
        result.Scores[Name] = (double)matched / leaves.Count;
        return ValueTask.CompletedTask;
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

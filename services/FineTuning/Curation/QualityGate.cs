using AspireTune.Analysis;
using System.ComponentModel.DataAnnotations;
using System.Text.Json.Serialization;

namespace AspireTune.FineTuning.Curation;

/// <summary>Thresholds of the data-quality gate (section <c>FineTuning:Curation</c>).</summary>
public sealed class CurationOptions
{
    public const string SectionName = "FineTuning:Curation";

    /// <summary>Jaccard similarity of word 3-shingle sets at or above which two examples are near duplicates. Default 0.9.</summary>
    [Range(0.5, 1.0)]
    public double NearDuplicateJaccard { get; set; } = 0.9;

    /// <summary>Fewest examples left after removals for the gate to pass. Default 10.</summary>
    [Range(1, 1_000_000)]
    public int MinExamples { get; set; } = 10;

    /// <summary>Largest share (0-1) of training examples that may overlap the test set; they are removed, above it the job fails. Default 0.2.</summary>
    [Range(0.0, 1.0)]
    public double MaxLeakageFraction { get; set; } = 0.2;

    /// <summary>Largest share (0-1) of examples longer than the maximum sequence length (they are truncated); above it the job fails. Default 0.5.</summary>
    [Range(0.0, 1.0)]
    public double MaxTruncatedFraction { get; set; } = 0.5;

    /// <summary>Share (0-1) of the most frequent answer above which the report warns of imbalance. Default 0.8.</summary>
    [Range(0.0, 1.0)]
    public double WarnMajorityShare { get; set; } = 0.8;
}

/// <summary>The gate's verdict, stored with the job and returned by <c>GET /api/fine-tuning/jobs/{id}</c>.</summary>
public sealed record QualityReport
{
    [JsonPropertyName("passed")] public required bool Passed { get; init; }
    [JsonPropertyName("format")] public required string Format { get; init; }
    [JsonPropertyName("examples_read")] public required int ExamplesRead { get; init; }
    [JsonPropertyName("examples_kept")] public required int ExamplesKept { get; init; }
    [JsonPropertyName("format_errors")] public required IReadOnlyList<JsonlError> FormatErrors { get; init; }
    [JsonPropertyName("format_error_count")] public required int FormatErrorCount { get; init; }
    [JsonPropertyName("duplicates")] public required DuplicateReport Duplicates { get; init; }
    [JsonPropertyName("leakage")] public LeakageReport? Leakage { get; init; }
    [JsonPropertyName("labels")] public required LabelReport Labels { get; init; }
    [JsonPropertyName("tokens")] public required TokenReport Tokens { get; init; }
    [JsonPropertyName("failures")] public required IReadOnlyList<string> Failures { get; init; }
    [JsonPropertyName("warnings")] public required IReadOnlyList<string> Warnings { get; init; }
}

/// <summary>A removed example: its line and the line of the example it repeats (in the same file, or the test file for leakage).</summary>
public sealed record RemovedLine(
    [property: JsonPropertyName("line")] int Line,
    [property: JsonPropertyName("same_as_line")] int SameAsLine,
    [property: JsonPropertyName("jaccard")] double Jaccard);

public sealed record DuplicateReport
{
    [JsonPropertyName("method")] public required string Method { get; init; }
    [JsonPropertyName("exact_removed")] public required int ExactRemoved { get; init; }
    [JsonPropertyName("near_removed")] public required int NearRemoved { get; init; }
    [JsonPropertyName("removed_lines")] public required IReadOnlyList<RemovedLine> RemovedLines { get; init; }
}

public sealed record LeakageReport
{
    [JsonPropertyName("test_examples")] public required int TestExamples { get; init; }
    [JsonPropertyName("overlapping_training_examples")] public required int OverlappingTrainingExamples { get; init; }
    [JsonPropertyName("fraction")] public required double Fraction { get; init; }
    [JsonPropertyName("removed_lines")] public required IReadOnlyList<RemovedLine> RemovedLines { get; init; }
}

public sealed record LabelReport
{
    /// <summary>True when the answers look like labels (few distinct values), so balance is meaningful.</summary>
    [JsonPropertyName("is_classification")] public required bool IsClassification { get; init; }
    [JsonPropertyName("distinct_answers")] public required int DistinctAnswers { get; init; }
    [JsonPropertyName("counts")] public required IReadOnlyDictionary<string, int> Counts { get; init; }
    [JsonPropertyName("majority_share")] public required double MajorityShare { get; init; }
    /// <summary>Most frequent over least frequent label count.</summary>
    [JsonPropertyName("imbalance_ratio")] public required double ImbalanceRatio { get; init; }
}

public sealed record TokenReport
{
    [JsonPropertyName("max_seq_len")] public required int MaxSeqLen { get; init; }
    [JsonPropertyName("min")] public required int Min { get; init; }
    [JsonPropertyName("mean")] public required double Mean { get; init; }
    [JsonPropertyName("p50")] public required int P50 { get; init; }
    [JsonPropertyName("p95")] public required int P95 { get; init; }
    [JsonPropertyName("max")] public required int Max { get; init; }
    [JsonPropertyName("total")] public required long Total { get; init; }
    [JsonPropertyName("truncated_examples")] public required int TruncatedExamples { get; init; }
    [JsonPropertyName("truncated_lines")] public required IReadOnlyList<int> TruncatedLines { get; init; }

    /// <summary>Examples whose truncation drops trained tokens: earlier trained assistant turns, or the end of the last one.</summary>
    [JsonPropertyName("truncated_trained_examples")] public int TruncatedTrainedExamples { get; init; }
    [JsonPropertyName("truncated_trained_lines")] public IReadOnlyList<int> TruncatedTrainedLines { get; init; } = [];
}

/// <summary>
/// An example's length in tokens under the base model's tokenizer and chat template, and how many of its trained tokens
/// truncation to max_seq_len drops (a plain count converts to a length with none dropped).
/// </summary>
public readonly record struct ExampleTokens(int Total, int TrainedLost = 0)
{
    public static implicit operator ExampleTokens(int total) => new(total);
}

/// <summary>The curated examples and the report that explains how they were chosen.</summary>
public sealed record CurationResult(QualityReport Report, IReadOnlyList<TrainingExample> Kept);

/// <summary>
/// The data-quality gate run before any training: format errors, exact then near-duplicate removal,
/// removal of training examples whose prompt overlaps the test set, answer balance, and token lengths
/// against the maximum sequence length.
/// </summary>
public static class QualityGate
{
    private const int MaxListed = 50;
    private const int MaxLabels = 50;

    /// <param name="training">The parsed training file.</param>
    /// <param name="test">The parsed held-out test file, when the caller supplied one (leakage check).</param>
    /// <param name="countTokens">Tokens of one example under the base model's tokenizer and chat template, and the trained ones truncation drops.</param>
    /// <param name="maxSeqLen">Longest training sequence in tokens; longer examples are truncated.</param>
    /// <param name="options">The gate's thresholds.</param>
    public static CurationResult Run(JsonlParseResult training, JsonlParseResult? test, Func<TrainingExample, ExampleTokens> countTokens, int maxSeqLen, CurationOptions options)
    {
        var failures = new List<string>();
        var warnings = new List<string>();
        if (training.ErrorCount > 0 || training.Examples.Count == 0)
            failures.Add($"Training file: {training.Summary()}");
        if (test is { IsValid: false })
            failures.Add($"Test file: {test.Summary()}");

        // Exact duplicates first (cheap, and the normalised form is what people call "the same"), then near.
        var removed = new List<RemovedLine>();
        var exactSeen = new Dictionary<string, int>();
        var near = new NearDuplicateIndex(options.NearDuplicateJaccard);
        var kept = new List<TrainingExample>();
        int exact = 0, nearCount = 0;
        foreach (var example in training.Examples)
        {
            var normal = NearDuplicateIndex.Normalize(example.FullText);
            if (exactSeen.TryGetValue(normal, out var firstLine))
            {
                exact++;
                removed.Add(new RemovedLine(example.LineNumber, firstLine, 1.0));
                continue;
            }
            var shingles = NearDuplicateIndex.Shingles(example.FullText);
            if (near.FindMatch(shingles) is { } match)
            {
                nearCount++;
                removed.Add(new RemovedLine(example.LineNumber, kept[match.Index].LineNumber, Math.Round(match.Jaccard, 4)));
                continue;
            }
            exactSeen[normal] = example.LineNumber;
            near.Add(shingles);
            kept.Add(example);
        }

        LeakageReport? leakage = null;
        if (test is { Examples.Count: > 0 })
        {
            var testIndex = new NearDuplicateIndex(options.NearDuplicateJaccard);
            var testExact = new Dictionary<string, int>();
            foreach (var t in test.Examples)
            {
                testIndex.Add(PromptText(t));
                testExact.TryAdd(NearDuplicateIndex.Normalize(PromptText(t)), t.LineNumber);
            }
            var leaked = new List<RemovedLine>();
            var clean = new List<TrainingExample>();
            foreach (var example in kept)
            {
                var prompt = PromptText(example);
                if (testExact.TryGetValue(NearDuplicateIndex.Normalize(prompt), out var testLine))
                    leaked.Add(new RemovedLine(example.LineNumber, testLine, 1.0));
                else if (testIndex.FindMatch(prompt) is { } match)
                    leaked.Add(new RemovedLine(example.LineNumber, test.Examples[match.Index].LineNumber, Math.Round(match.Jaccard, 4)));
                else
                    clean.Add(example);
            }
            var fraction = kept.Count == 0 ? 0 : (double)leaked.Count / kept.Count;
            leakage = new LeakageReport
            {
                TestExamples = test.Examples.Count,
                OverlappingTrainingExamples = leaked.Count,
                Fraction = Math.Round(fraction, 4),
                RemovedLines = leaked.Take(MaxListed).ToList(),
            };
            if (fraction > options.MaxLeakageFraction)
                failures.Add($"{leaked.Count} of {kept.Count} training examples ({fraction:P1}) have a prompt that matches the test set (Jaccard >= {options.NearDuplicateJaccard:0.##}); the limit is {options.MaxLeakageFraction:P0}. Re-split the data so the test set is held out.");
            else if (leaked.Count > 0)
                warnings.Add($"{leaked.Count} training example(s) overlap the test set and were removed (lines {string.Join(", ", leaked.Take(10).Select(l => l.Line))}).");
            kept = clean;
        }

        if (exact + nearCount > 0)
            warnings.Add($"Removed {exact} exact and {nearCount} near-duplicate example(s).");
        if (training.Examples.Count > 0 && kept.Count < options.MinExamples)
            failures.Add($"Only {kept.Count} example(s) remain after removing duplicates and test overlap; at least {options.MinExamples} are needed.");

        var labels = Labels(kept);
        if (labels.IsClassification && labels.MajorityShare > options.WarnMajorityShare)
            warnings.Add($"The most frequent answer is {labels.MajorityShare:P0} of the examples: a model can score that by always giving it. Balance the labels or weigh the metric.");

        var tokens = Tokens(kept, countTokens, maxSeqLen);
        var truncatedFraction = kept.Count == 0 ? 0 : (double)tokens.TruncatedExamples / kept.Count;
        if (truncatedFraction > options.MaxTruncatedFraction)
            failures.Add($"{tokens.TruncatedExamples} of {kept.Count} examples ({truncatedFraction:P0}) exceed max_seq_len {maxSeqLen} tokens and would be truncated; the limit is {options.MaxTruncatedFraction:P0}. Shorten them or raise max_seq_len.");
        else if (tokens.TruncatedExamples > 0)
            warnings.Add($"{tokens.TruncatedExamples} example(s) exceed max_seq_len {maxSeqLen} tokens and will be truncated from the start (whole earlier turns where possible), keeping the last trained turn.");
        if (tokens.TruncatedTrainedExamples > 0)
            warnings.Add($"{tokens.TruncatedTrainedExamples} example(s) lose trained tokens to that truncation (earlier assistant turns become context or are dropped, or the last answer is cut short): lines {string.Join(", ", tokens.TruncatedTrainedLines.Take(10))}.");

        var report = new QualityReport
        {
            Passed = failures.Count == 0,
            Format = training.Format,
            ExamplesRead = training.Examples.Count,
            ExamplesKept = kept.Count,
            FormatErrors = training.Errors,
            FormatErrorCount = training.ErrorCount,
            Duplicates = new DuplicateReport { Method = near.Method, ExactRemoved = exact, NearRemoved = nearCount, RemovedLines = removed.Take(MaxListed).ToList() },
            Leakage = leakage,
            Labels = labels,
            Tokens = tokens,
            Failures = failures,
            Warnings = warnings,
        };
        return new CurationResult(report, kept);
    }

    private static string PromptText(TrainingExample example) => string.Join("\n", example.Prompt.Where(m => m.Role == "user").Select(m => m.Content));

    private static LabelReport Labels(IReadOnlyList<TrainingExample> kept)
    {
        var counts = kept.GroupBy(e => e.Answer.Trim().ToLowerInvariant()).ToDictionary(g => g.Key, g => g.Count());
        var distinct = counts.Count;
        // Few distinct answers relative to the examples means labels; free-text answers are almost all distinct.
        var isClassification = distinct >= 2 && distinct <= MaxLabels && distinct <= Math.Max(2, kept.Count / 2);
        var max = counts.Count == 0 ? 0 : counts.Values.Max();
        var min = counts.Count == 0 ? 0 : counts.Values.Min();
        return new LabelReport
        {
            IsClassification = isClassification,
            DistinctAnswers = distinct,
            Counts = isClassification ? counts.OrderByDescending(c => c.Value).ThenBy(c => c.Key, StringComparer.Ordinal).ToDictionary(c => c.Key, c => c.Value) : new Dictionary<string, int>(),
            MajorityShare = kept.Count == 0 ? 0 : Math.Round((double)max / kept.Count, 4),
            ImbalanceRatio = min == 0 ? 0 : Math.Round((double)max / min, 4),
        };
    }

    private static TokenReport Tokens(IReadOnlyList<TrainingExample> kept, Func<TrainingExample, ExampleTokens> countTokens, int maxSeqLen)
    {
        var lengths = kept.Select(e => (e.LineNumber, Tokens: countTokens(e))).ToList();
        var sorted = lengths.Select(l => l.Tokens.Total).Order().ToArray();
        var truncated = lengths.Where(l => l.Tokens.Total > maxSeqLen).Select(l => l.LineNumber).ToList();
        var lost = lengths.Where(l => l.Tokens.TrainedLost > 0).Select(l => l.LineNumber).ToList();
        return new TokenReport
        {
            MaxSeqLen = maxSeqLen,
            Min = sorted.Length == 0 ? 0 : sorted[0],
            Mean = sorted.Length == 0 ? 0 : Math.Round(sorted.Average(), 2),
            P50 = Percentile(sorted, 0.5),
            P95 = Percentile(sorted, 0.95),
            Max = sorted.Length == 0 ? 0 : sorted[^1],
            Total = sorted.Sum(s => (long)s),
            TruncatedExamples = truncated.Count,
            TruncatedLines = truncated.Take(MaxListed).ToList(),
            TruncatedTrainedExamples = lost.Count,
            TruncatedTrainedLines = lost.Take(MaxListed).ToList(),
        };
    }

    private static int Percentile(int[] sorted, double p) =>
        sorted.Length == 0 ? 0 : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];
}

using AspireTune.Analysis;
using AspireTune.Contracts.Comparison;

namespace AspireTune.Comparison.Curation;

public sealed record Splits(IReadOnlyList<LabeledExample> Train, IReadOnlyList<LabeledExample> Validation, IReadOnlyList<LabeledExample> Test);

/// <summary>
/// Dataset curation before any candidate sees the data: exact and near-duplicate removal, label conflicts,
/// label balance, then a stratified train/validation/test split and a leakage check across the splits. Generation
/// datasets (a reference answer per input) have no labels to count or stratify by: they are shuffled and cut.
/// </summary>
public static class Curator
{
    public static (Splits Splits, CurationReport Report) Curate(string jsonl, double testFraction, double validationFraction, int seed, double nearDuplicateThreshold = 0.9,
        ExperimentTask task = ExperimentTask.Classification)
    {
        var (parsed, errors, errorCount) = DatasetReader.Parse(jsonl, task);
        var classification = task == ExperimentTask.Classification;

        // Exact duplicates and label conflicts, on normalised input text.
        var byText = parsed.GroupBy(e => NearDuplicateIndex.Normalize(e.Input)).ToList();
        var conflicting = byText.Where(g => g.Select(e => e.Expected).Distinct().Count() > 1).ToList();
        var unique = byText.Where(g => g.Select(e => e.Expected).Distinct().Count() == 1).Select(g => g.First()).OrderBy(e => e.Line).ToList();
        var exactRemoved = parsed.Count - unique.Count - conflicting.Sum(g => g.Count());

        // Near duplicates: the first of a group is kept, later ones are dropped.
        var near = new NearDuplicateIndex(nearDuplicateThreshold);
        var kept = new List<LabeledExample>(unique.Count);
        foreach (var example in unique)
        {
            var shingles = NearDuplicateIndex.Shingles(example.Input);
            if (near.FindMatch(shingles) is not null)
                continue;
            near.Add(shingles);
            kept.Add(example);
        }
        var nearRemoved = unique.Count - kept.Count;

        var splits = classification ? StratifiedSplit(kept, testFraction, validationFraction, seed) : RandomSplit(kept, testFraction, validationFraction, seed);
        var labelCounts = classification ? kept.GroupBy(e => e.Expected).OrderByDescending(g => g.Count()).ToDictionary(g => g.Key, g => g.Count()) : [];
        var imbalance = labelCounts.Count == 0 ? 0 : labelCounts.Values.Max() / (double)labelCounts.Values.Min();

        var trainIndex = new NearDuplicateIndex(nearDuplicateThreshold);
        foreach (var example in splits.Train)
            trainIndex.Add(example.Input);
        var crossSplit = splits.Test.Count(e => trainIndex.FindMatch(e.Input) is not null);

        var warnings = new List<string>();
        if (errorCount > 0)
            warnings.Add($"{errorCount} line(s) could not be read and were left out (first at line {errors[0].Line}).");
        if (imbalance > 3)
            warnings.Add($"Labels are imbalanced ({imbalance:0.0}:1): compare macro-F1, not only accuracy.");
        if (labelCounts.Count > 0 && labelCounts.Values.Min() < 5)
            warnings.Add("Some labels have fewer than 5 examples: their test estimates are very uncertain.");
        if (splits.Test.Count < 30)
            warnings.Add($"Only {splits.Test.Count} test examples: confidence intervals will be wide.");

        return (splits, new CurationReport
        {
            Received = parsed.Count + errorCount,
            FormatErrors = errorCount,
            Errors = errors,
            ExactDuplicatesRemoved = exactRemoved,
            NearDuplicatesRemoved = nearRemoved,
            NearDuplicateThreshold = nearDuplicateThreshold,
            ConflictingLabelsRemoved = conflicting.Sum(g => g.Count()),
            Kept = kept.Count,
            LabelCounts = labelCounts,
            ReferenceFields = classification ? null : ReferenceFields(kept),
            LongestReference = classification ? 0 : kept.Select(e => e.Expected.Length).DefaultIfEmpty(0).Max(),
            ImbalanceRatio = Math.Round(imbalance, 3),
            Train = splits.Train.Count,
            Validation = splits.Validation.Count,
            Test = splits.Test.Count,
            CrossSplitNearDuplicates = crossSplit,
            Warnings = warnings,
        });
    }

    /// <summary>The references' top-level fields in first-seen order when every reference is a JSON object; else null.</summary>
    private static List<string>? ReferenceFields(IReadOnlyList<LabeledExample> examples)
    {
        var fields = new List<string>();
        foreach (var e in examples)
        {
            if (!e.Expected.StartsWith('{'))
                return null;
            try
            {
                using var doc = System.Text.Json.JsonDocument.Parse(e.Expected);
                if (doc.RootElement.ValueKind != System.Text.Json.JsonValueKind.Object)
                    return null;
                foreach (var p in doc.RootElement.EnumerateObject())
                    if (!fields.Contains(p.Name, StringComparer.Ordinal))
                        fields.Add(p.Name);
            }
            catch (System.Text.Json.JsonException)
            {
                return null;
            }
        }
        return examples.Count == 0 ? null : fields;
    }

    /// <summary>Shuffle with the seed, then cut test, validation and train (generation: no label to stratify by).</summary>
    public static Splits RandomSplit(IReadOnlyList<LabeledExample> examples, double testFraction, double validationFraction, int seed)
    {
        var items = examples.ToArray();
        new Random(seed).Shuffle(items);
        var nTest = (int)Math.Round(items.Length * testFraction);
        var nValidation = (int)Math.Round((items.Length - nTest) * validationFraction);
        return new Splits(items.Skip(nTest + nValidation).OrderBy(e => e.Line).ToList(), items.Skip(nTest).Take(nValidation).OrderBy(e => e.Line).ToList(),
            items.Take(nTest).OrderBy(e => e.Line).ToList());
    }

    /// <summary>Per label: shuffle with the seed, then cut test, validation and train in the same proportions.</summary>
    public static Splits StratifiedSplit(IReadOnlyList<LabeledExample> examples, double testFraction, double validationFraction, int seed)
    {
        var random = new Random(seed);
        List<LabeledExample> train = [], validation = [], test = [];
        foreach (var group in examples.GroupBy(e => e.Expected).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var items = group.ToArray();
            random.Shuffle(items);
            var nTest = (int)Math.Round(items.Length * testFraction);
            var nValidation = (int)Math.Round((items.Length - nTest) * validationFraction);
            test.AddRange(items.Take(nTest));
            validation.AddRange(items.Skip(nTest).Take(nValidation));
            train.AddRange(items.Skip(nTest + nValidation));
        }
        return new Splits(train.OrderBy(e => e.Line).ToList(), validation.OrderBy(e => e.Line).ToList(), test.OrderBy(e => e.Line).ToList());
    }
}

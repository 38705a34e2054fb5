using AspireTune.Analysis;
using AspireTune.Contracts.Comparison;
using System.Globalization;
using System.Text;

namespace AspireTune.Comparison.Analysis;

/// <summary>
/// Puts the candidates side by side on the same test items: quality with intervals, paired tests against the
/// most accurate candidate, latency percentiles, cost per 1k requests, the Pareto front and a written decision.
/// </summary>
public static class Comparer
{
    public static ComparisonResult Compare(IReadOnlyList<CandidateResults> candidates, IReadOnlyDictionary<string, string> expectedByItem, DecisionSettings? settings = null)
    {
        settings ??= new DecisionSettings();
        if (candidates.Count == 0)
            throw new ArgumentException("There is no candidate to compare.", nameof(candidates));

        var classification = settings.Task == ExperimentTask.Classification;
        var summaries = candidates.Select(c => Summarize(c, expectedByItem, classification)).ToList();
        var front = ParetoFront(summaries);
        summaries = summaries.Select(s => s with { OnParetoFront = front.Contains(s.Name) }).ToList();

        var best = summaries.OrderByDescending(s => s.Accuracy).ThenBy(s => s.CostPer1k).ThenBy(s => s.LatencyP95).First();
        var pairwise = candidates.Where(c => c.Name != best.Name)
            .Select(c => Paired(candidates.Single(x => x.Name == best.Name), c)).ToList();

        // Among the candidates the data cannot tell apart from the most accurate one, the cheapest, then fastest, wins.
        var indistinguishable = pairwise.Where(p => !p.Significant).Select(p => p.B).ToHashSet();
        var winner = summaries.Where(s => s.Name == best.Name || indistinguishable.Contains(s.Name))
            .OrderBy(s => s.CostPer1k).ThenBy(s => s.LatencyP95).ThenByDescending(s => s.Accuracy).First();

        var verdicts = candidates.Where(c => c.Name != best.Name)
            .Select(c => Ownership.NonInferior(c, candidates.Single(x => x.Name == best.Name), settings)).OfType<NonInferiorityVerdict>().ToList();
        var costs = candidates.Select(c => Ownership.Cost(c, settings)).ToList();
        var acceptable = costs.Where(c => c.Candidate == best.Name || verdicts.Any(v => v.Candidate == c.Candidate && v.NonInferior)).ToList();
        var cheapest = CostOfOwnership.CheapestByVolume(costs, settings.HorizonDays);
        var cheapestAcceptable = CostOfOwnership.CheapestByVolume(acceptable, settings.HorizonDays);
        var labels = expectedByItem.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();

        var decision = WriteDecision(summaries, pairwise, best, winner, settings.PrimaryMetric)
            + Ownership.Describe(best, verdicts, costs, cheapest, cheapestAcceptable, settings);
        return new ComparisonResult
        {
            Candidates = summaries,
            Pairwise = pairwise,
            Task = settings.Task,
            PrimaryMetric = settings.PrimaryMetric,
            Winner = winner.Name,
            Decision = decision,
            NonInferiority = verdicts,
            Costs = costs,
            CheapestByVolume = cheapest,
            CheapestAcceptableByVolume = cheapestAcceptable,
            CostHorizonDays = settings.HorizonDays,
            Confusion = classification ? candidates.Select(c => Confusion(c, expectedByItem, labels)).ToList() : [],
        };
    }

    /// <summary>p-values as readers expect them: three decimals, and <c>&lt; 0.001</c> below that.</summary>
    public static string FormatP(double p) =>
        double.IsNaN(p) ? "n/a" : p < 0.001 ? "< 0.001" : p.ToString("0.000", CultureInfo.InvariantCulture);

    /// <summary>Invalid and error columns apart: a candidate that never names a label is not one that names the wrong one.</summary>
    private static ConfusionMatrix Confusion(CandidateResults c, IReadOnlyDictionary<string, string> expectedByItem, List<string> labels)
    {
        const string invalid = "(invalid)", error = "(error)";
        var columns = labels.Append(invalid).Append(error).ToList();
        var byKey = labels.GroupBy(LabelKey).ToDictionary(g => g.Key, g => g.First());
        var counts = labels.Select(_ => new int[columns.Count]).ToList();
        foreach (var item in c.Items)
        {
            if (!expectedByItem.TryGetValue(item.ItemId, out var expected))
                continue;
            var answered = item.Error is not null ? error
                : item.Correct ? expected
                : !item.Invalid && item.Output is { } o && byKey.TryGetValue(LabelKey(o), out var label) ? label
                : invalid;
            counts[labels.IndexOf(expected)][columns.IndexOf(answered)]++;
        }
        return new ConfusionMatrix { Candidate = c.Name, Labels = labels, Columns = columns, Counts = counts };
    }

    // Case, spacing and punctuation ignored: the Evaluation service reports labels normalised.
    private static string LabelKey(string text) => NearDuplicateIndex.Normalize(text).Replace(" ", "", StringComparison.Ordinal);

    private const int Resamples = 2000;
    private const int Seed = 17;

    private static CandidateSummary Summarize(CandidateResults c, IReadOnlyDictionary<string, string> expectedByItem, bool classification)
    {
        var accuracy = Statistics.Mean("accuracy", c.Items.Select(i => i.Quality).ToList(), Resamples, Seed);
        // Generation: every score's mean over all items (a failed call or a missing score counts 0), each with its interval.
        var metrics = classification ? [] : c.Items.SelectMany(i => i.Scores?.Keys ?? []).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)
            .Select(name => Statistics.Mean(name, c.Items.Select(i => i.Scores?.GetValueOrDefault(name) ?? 0).ToList(), Resamples, Seed)).ToList();
        var latencies = c.Items.Where(i => i.Error is null && double.IsFinite(i.LatencySeconds)).Select(i => i.LatencySeconds).Order().ToArray();
        return new CandidateSummary
        {
            Name = c.Name,
            Kind = c.Kind,
            Items = c.Items.Count,
            Errors = c.Items.Count(i => i.Error is not null),
            Invalid = c.Items.Count(i => i.Error is null && i.Invalid),
            ExamplesShownMean = c.Items.Any(i => i.ExamplesShown is not null) ? c.Items.Where(i => i.ExamplesShown is not null).Average(i => i.ExamplesShown!.Value) : null,
            ExamplesRetrievedMean = c.Items.Any(i => i.ExamplesRetrieved is not null) ? c.Items.Where(i => i.ExamplesRetrieved is not null).Average(i => i.ExamplesRetrieved!.Value) : null,
            InputsTruncated = c.Items.Count(i => i.InputTruncated),
            LikelihoodAccuracy = c.Items.Any(i => i.LikelihoodCorrect is not null) ? c.Items.Average(i => i.LikelihoodCorrect == true ? 1.0 : 0) : null,
            Accuracy = accuracy.Value,
            AccuracyLower = accuracy.Lower ?? double.NaN,
            AccuracyUpper = accuracy.Upper ?? double.NaN,
            Metrics = metrics,
            MacroF1 = classification ? MacroF1(c, expectedByItem) : double.NaN,
            LatencyP50 = Statistics.PercentileOfSorted(latencies, 50),
            LatencyP95 = Statistics.PercentileOfSorted(latencies, 95),
            LatencyP99 = Statistics.PercentileOfSorted(latencies, 99),
            CostPer1k = c.Items.Count == 0 ? 0 : c.Items.Average(i => i.CostUsd) * 1000,
            OnParetoFront = false,
        };
    }

    /// <summary>Macro-F1 over the expected labels; a wrong answer counts as its normalised output.</summary>
    private static double MacroF1(CandidateResults c, IReadOnlyDictionary<string, string> expectedByItem)
    {
        var pairs = c.Items.Where(i => expectedByItem.ContainsKey(i.ItemId))
            .Select(i => (Expected: expectedByItem[i.ItemId], Predicted: i.Correct ? expectedByItem[i.ItemId] : (i.Output ?? "").Trim()))
            .ToList();
        return Statistics.MacroF1(i => pairs[i], pairs.Count);
    }

    private static PairwiseTest Paired(CandidateResults a, CandidateResults b)
    {
        var bById = b.Items.ToDictionary(i => i.ItemId);
        var shared = a.Items.Where(i => bById.ContainsKey(i.ItemId)).ToList();
        // "A better" and "B better" per item: for right/wrong the discordant pairs of McNemar's test; for graded scores
        // the items one scored higher on, and the same exact binomial is then the sign test.
        var aBetter = shared.Select(i => i.Quality > bById[i.ItemId].Quality).ToList();
        var bBetter = shared.Select(i => bById[i.ItemId].Quality > i.Quality).ToList();
        var (aOnly, bOnly, p) = Statistics.McNemar(aBetter, bBetter);
        var differences = shared.Select(i => i.Quality - bById[i.ItemId].Quality).ToList();
        var difference = Statistics.Mean("difference", differences, Resamples, Seed);
        return new PairwiseTest
        {
            A = a.Name,
            B = b.Name,
            Difference = shared.Count == 0 ? 0 : differences.Average(),
            DifferenceLower = difference.Lower ?? double.NaN,
            DifferenceUpper = difference.Upper ?? double.NaN,
            AOnlyCorrect = aOnly,
            BOnlyCorrect = bOnly,
            McNemarP = p,
        };
    }

    /// <summary>Candidates no other candidate beats on accuracy, p95 latency and cost at once.</summary>
    public static HashSet<string> ParetoFront(IReadOnlyList<CandidateSummary> summaries)
    {
        static bool Dominates(CandidateSummary x, CandidateSummary y) =>
            x.Accuracy >= y.Accuracy && Latency(x) <= Latency(y) && x.CostPer1k <= y.CostPer1k
            && (x.Accuracy > y.Accuracy || Latency(x) < Latency(y) || x.CostPer1k < y.CostPer1k);
        static double Latency(CandidateSummary s) => double.IsNaN(s.LatencyP95) ? double.MaxValue : s.LatencyP95;
        return summaries.Where(s => !summaries.Any(o => o.Name != s.Name && Dominates(o, s))).Select(s => s.Name).ToHashSet();
    }

    /// <summary>"= 0.042" or "&lt; 0.001", to follow "p".</summary>
    private static string PValue(double p) => FormatP(p) is var f && f.StartsWith('<') ? f : "= " + f;

    private static string WriteDecision(IReadOnlyList<CandidateSummary> summaries, IReadOnlyList<PairwiseTest> pairwise, CandidateSummary best, CandidateSummary winner, string metric)
    {
        var c = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        var test = metric == "accuracy" ? "McNemar" : "sign test";
        sb.Append(c, $"Recommended: {winner.Name} ({winner.Kind.ToWireName()}) with {(metric == "accuracy" ? "accuracy" : $"mean {metric}")} {winner.Accuracy:P1} [95% CI {winner.AccuracyLower:P1}-{winner.AccuracyUpper:P1}], ");
        sb.Append(c, $"p95 latency {winner.LatencyP95 * 1000:0} ms and {winner.CostPer1k:0.####} USD per 1k requests on {winner.Items} held-out items. ");
        if (winner.Name != best.Name)
        {
            var paired = pairwise.Single(p => p.B == winner.Name);
            sb.Append(c, $"{best.Name} scored higher ({best.Accuracy:P1}) but the difference is not significant ({test} p {PValue(paired.McNemarP)}), ");
            sb.Append(c, $"and {winner.Name} is cheaper or faster. ");
        }
        else
        {
            var beaten = pairwise.Where(p => p.Significant).Select(p => p.B).ToList();
            var tied = pairwise.Where(p => !p.Significant).Select(p => p.B).ToList();
            if (beaten.Count > 0)
                sb.Append(c, $"It {(metric == "accuracy" ? "is significantly more accurate" : "scores significantly higher")} than {string.Join(", ", beaten)} ({test} p < 0.05). ");
            if (tied.Count > 0)
                sb.Append(c, $"The data cannot separate it from {string.Join(", ", tied)}, which cost and latency did not favour. ");
        }
        var errors = summaries.Where(s => s.Errors > 0).ToList();
        if (errors.Count > 0)
            sb.Append(c, $"Errors counted as wrong answers: {string.Join(", ", errors.Select(e => $"{e.Name} {e.Errors}"))}. ");
        var invalid = summaries.Where(s => s.Invalid > 0).ToList();
        if (invalid.Count > 0)
            sb.Append(c, $"Invalid answers (naming no label; counted as wrong): {string.Join(", ", invalid.Select(e => $"{e.Name} {e.Invalid} of {e.Items}"))}. ");
        var likely = summaries.Where(s => s.LikelihoodAccuracy is not null).ToList();
        if (likely.Count > 0)
            sb.Append(c, $"Scored by the label the model finds most likely (log-likelihood per byte, as lm-evaluation-harness scores multiple choice): {string.Join(", ", likely.Select(l => $"{l.Name} {l.LikelihoodAccuracy:P1} (greedy answer {l.Accuracy:P1})"))}. ");
        var fitted = summaries.Where(s => s.ExamplesRetrievedMean is { } offered && (s.ExamplesShownMean < offered || s.InputsTruncated > 0)).ToList();
        if (fitted.Count > 0)
            sb.Append(c, $"Prompts fitted to the model's context: {string.Join(", ", fitted.Select(f => $"{f.Name} saw {f.ExamplesShownMean:0.#} of {f.ExamplesRetrievedMean:0.#} examples on average{(f.InputsTruncated > 0 ? $", {f.InputsTruncated} inputs cut" : "")}"))}. ");
        if (metric != "accuracy" && winner.Metrics.Count > 0)
            sb.Append(c, $"{winner.Name} scores {string.Join(", ", winner.Metrics.Select(m => $"{m.Name} {m.Value:P1}"))}. ");
        sb.Append(c, $"Pareto front ({metric}, p95 latency, cost): {string.Join(", ", summaries.Where(s => s.OnParetoFront).Select(s => s.Name))}.");
        return sb.ToString();
    }
}

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
    public static ComparisonResult Compare(IReadOnlyList<CandidateResults> candidates, IReadOnlyDictionary<string, string> expectedByItem)
    {
        if (candidates.Count == 0)
            throw new ArgumentException("There is no candidate to compare.", nameof(candidates));

        var summaries = candidates.Select(c => Summarize(c, expectedByItem)).ToList();
        var front = ParetoFront(summaries);
        summaries = summaries.Select(s => s with { OnParetoFront = front.Contains(s.Name) }).ToList();

        var best = summaries.OrderByDescending(s => s.Accuracy).ThenBy(s => s.CostPer1k).ThenBy(s => s.LatencyP95).First();
        var pairwise = candidates.Where(c => c.Name != best.Name)
            .Select(c => Paired(candidates.Single(x => x.Name == best.Name), c)).ToList();

        // Among the candidates the data cannot tell apart from the most accurate one, the cheapest, then fastest, wins.
        var indistinguishable = pairwise.Where(p => !p.Significant).Select(p => p.B).ToHashSet();
        var winner = summaries.Where(s => s.Name == best.Name || indistinguishable.Contains(s.Name))
            .OrderBy(s => s.CostPer1k).ThenBy(s => s.LatencyP95).ThenByDescending(s => s.Accuracy).First();

        return new ComparisonResult
        {
            Candidates = summaries,
            Pairwise = pairwise,
            Winner = winner.Name,
            Decision = WriteDecision(summaries, pairwise, best, winner),
        };
    }

    private const int Resamples = 2000;
    private const int Seed = 17;

    private static CandidateSummary Summarize(CandidateResults c, IReadOnlyDictionary<string, string> expectedByItem)
    {
        var accuracy = Statistics.Mean("accuracy", c.Items.Select(i => i.Correct ? 1.0 : 0.0).ToList(), Resamples, Seed);
        var latencies = c.Items.Where(i => i.Error is null && double.IsFinite(i.LatencySeconds)).Select(i => i.LatencySeconds).Order().ToArray();
        return new CandidateSummary
        {
            Name = c.Name,
            Kind = c.Kind,
            Items = c.Items.Count,
            Errors = c.Items.Count(i => i.Error is not null),
            Accuracy = accuracy.Value,
            AccuracyLower = accuracy.Lower ?? double.NaN,
            AccuracyUpper = accuracy.Upper ?? double.NaN,
            MacroF1 = MacroF1(c, expectedByItem),
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
        var aCorrect = shared.Select(i => i.Correct).ToList();
        var bCorrect = shared.Select(i => bById[i.ItemId].Correct).ToList();
        var (aOnly, bOnly, p) = Statistics.McNemar(aCorrect, bCorrect);
        var difference = Statistics.Mean("difference", aCorrect.Zip(bCorrect, (x, y) => (x ? 1.0 : 0) - (y ? 1.0 : 0)).ToList(), Resamples, Seed);
        return new PairwiseTest
        {
            A = a.Name,
            B = b.Name,
            Difference = shared.Count == 0 ? 0 : (aOnly - bOnly) / (double)shared.Count,
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

    private static string WriteDecision(IReadOnlyList<CandidateSummary> summaries, IReadOnlyList<PairwiseTest> pairwise, CandidateSummary best, CandidateSummary winner)
    {
        var c = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.Append(c, $"Recommended: {winner.Name} ({winner.Kind.ToWireName()}) with accuracy {winner.Accuracy:P1} [95% CI {winner.AccuracyLower:P1}-{winner.AccuracyUpper:P1}], ");
        sb.Append(c, $"p95 latency {winner.LatencyP95 * 1000:0} ms and {winner.CostPer1k:0.####} USD per 1k requests on {winner.Items} held-out items. ");
        if (winner.Name != best.Name)
        {
            var test = pairwise.Single(p => p.B == winner.Name);
            sb.Append(c, $"{best.Name} scored higher ({best.Accuracy:P1}) but the difference is not significant (McNemar p = {test.McNemarP:0.###}), ");
            sb.Append(c, $"and {winner.Name} is cheaper or faster. ");
        }
        else
        {
            var beaten = pairwise.Where(p => p.Significant).Select(p => p.B).ToList();
            var tied = pairwise.Where(p => !p.Significant).Select(p => p.B).ToList();
            if (beaten.Count > 0)
                sb.Append(c, $"It is significantly more accurate than {string.Join(", ", beaten)} (McNemar p < 0.05). ");
            if (tied.Count > 0)
                sb.Append(c, $"The data cannot separate it from {string.Join(", ", tied)}, which cost and latency did not favour. ");
        }
        var errors = summaries.Where(s => s.Errors > 0).ToList();
        if (errors.Count > 0)
            sb.Append(c, $"Errors counted as wrong answers: {string.Join(", ", errors.Select(e => $"{e.Name} {e.Errors}"))}. ");
        sb.Append(c, $"Pareto front (accuracy, p95 latency, cost): {string.Join(", ", summaries.Where(s => s.OnParetoFront).Select(s => s.Name))}.");
        return sb.ToString();
    }
}

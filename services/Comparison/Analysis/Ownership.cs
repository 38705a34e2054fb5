using System.Globalization;
using System.Text;
using AspireTune.Analysis;
using AspireTune.Contracts.Comparison;

namespace AspireTune.Comparison.Analysis;

/// <summary>The parts of the decision past accuracy: non-inferiority at a margin, and the total cost of ownership.</summary>
public static class Ownership
{
    /// <summary>Candidate against reference on the items both answered; null when fewer than two are shared.</summary>
    public static NonInferiorityVerdict? NonInferior(CandidateResults candidate, CandidateResults reference, DecisionSettings settings)
    {
        var byId = reference.Items.ToDictionary(i => i.ItemId);
        var shared = candidate.Items.Where(i => byId.ContainsKey(i.ItemId)).ToList();
        if (shared.Count < 2)
            return null;
        var r = AspireTune.Analysis.NonInferiority.Test(
            shared.Select(i => i.Quality).ToList(), shared.Select(i => byId[i.ItemId].Quality).ToList(),
            settings.NonInferiorityMargin, settings.Confidence);
        return new NonInferiorityVerdict
        {
            Candidate = candidate.Name, Reference = reference.Name, Items = r.Items, Difference = r.Difference,
            LowerBound = r.LowerBound, Margin = r.Margin, Confidence = r.Confidence, NonInferior = r.NonInferior,
        };
    }

    /// <summary>
    /// One-off: training GPU-hours at their price. Per request: the measured mean cost of a call (tokens at the
    /// endpoint's prices). Per day: a self-served candidate (its calls cost nothing, it runs on our hardware) pays its
    /// host around the clock; the kNN baseline pays the index's host.
    /// </summary>
    public static CandidateCost Cost(CandidateResults c, DecisionSettings settings)
    {
        var perRequest = c.Items.Count == 0 ? 0 : c.Items.Average(i => i.CostUsd);
        var perDay = c.Kind == CandidateKind.Knn ? settings.KnnHourPrice * 24 : perRequest == 0 ? settings.SelfServedHourPrice * 24 : 0;
        return new CandidateCost(c.Name, c.TrainingGpuHours * settings.GpuHourPrice, perDay, perRequest);
    }

    /// <summary>The sentences of the decision about margin and cost.</summary>
    public static string Describe(CandidateSummary best, IReadOnlyList<NonInferiorityVerdict> verdicts, IReadOnlyList<CandidateCost> costs,
        IReadOnlyList<CheapestRange> cheapest, IReadOnlyList<CheapestRange> cheapestAcceptable, DecisionSettings settings)
    {
        var c = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        if (verdicts.Count > 0)
        {
            sb.Append(c, $" Non-inferiority against {best.Name} at a margin of {settings.NonInferiorityMargin * 100:0.#} points (one-sided {settings.Confidence:P0} lower bound of the {(settings.PrimaryMetric == "accuracy" ? "accuracy" : settings.PrimaryMetric)} difference): ");
            sb.Append(string.Join("; ", verdicts.Select(v => string.Create(c,
                $"{v.Candidate} {(v.NonInferior ? "is within the margin" : "is not shown to be within it")} (difference {v.Difference * 100:+0.0;-0.0;0.0} points, bound {v.LowerBound * 100:+0.0;-0.0;0.0})")))).Append('.');
        }
        sb.Append(c, $" Total cost of ownership over {settings.HorizonDays:0.#} days (training at {settings.GpuHourPrice:0.##} USD a GPU-hour spread over them, self-served models at {settings.SelfServedHourPrice:0.##} USD an hour, hosted ones by their tokens): ");
        sb.Append(Ranges(cheapest)).Append('.');
        var never = costs.Select(x => x.Candidate).Where(n => cheapest.All(r => r.Candidate != n)).ToList();
        if (never.Count > 0)
            sb.Append(c, $" Never the cheapest: {string.Join(", ", never)}.");
        if (cheapestAcceptable.Count > 0 && (cheapestAcceptable.Count != cheapest.Count || cheapestAcceptable.Zip(cheapest).Any(p => p.First != p.Second)))
            sb.Append(" Among the most accurate candidate and those within the margin: ").Append(Ranges(cheapestAcceptable)).Append('.');
        return sb.ToString();
    }

    private static string Ranges(IReadOnlyList<CheapestRange> ranges) =>
        string.Join("; ", ranges.Select(r => r.ToRequestsPerDay is { } to
            ? string.Create(CultureInfo.InvariantCulture, $"{r.Candidate} is cheapest from {Volume(r.FromRequestsPerDay)} to {Volume(to)} requests a day")
            : string.Create(CultureInfo.InvariantCulture, $"{r.Candidate} is cheapest from {Volume(r.FromRequestsPerDay)} requests a day up")));

    public static string Volume(double requestsPerDay) => requestsPerDay.ToString(requestsPerDay < 10 ? "0.#" : "#,0", CultureInfo.InvariantCulture);
}

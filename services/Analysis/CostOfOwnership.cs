namespace AspireTune.Analysis;

/// <summary>
/// What a candidate costs to own, in USD: a one-off cost (training: GPU-hours times their price), a fixed cost
/// per day (hosting a self-served model around the clock) and a cost per request (tokens of a hosted model).
/// </summary>
public sealed record CandidateCost(string Candidate, double OneOff, double FixedPerDay, double PerRequest)
{
    /// <summary>Cost of one day at <paramref name="requestsPerDay"/>, the one-off cost spread over <paramref name="horizonDays"/>.</summary>
    public double PerDay(double requestsPerDay, double horizonDays) => OneOff / horizonDays + FixedPerDay + PerRequest * requestsPerDay;
}

/// <summary>From <see cref="FromRequestsPerDay"/> requests a day up to <see cref="ToRequestsPerDay"/> (null: no limit), <see cref="Candidate"/> is the cheapest.</summary>
public sealed record CheapestRange(string Candidate, double FromRequestsPerDay, double? ToRequestsPerDay);

/// <summary>Total cost of ownership: daily cost lines, where two of them cross, and which candidate is cheapest at which volume.</summary>
public static class CostOfOwnership
{
    /// <summary>
    /// The volume (requests a day, at or above 0) at which <paramref name="a"/> and <paramref name="b"/> cost the same
    /// over the horizon; null when the lines never cross at a non-negative volume (one is cheaper everywhere).
    /// </summary>
    public static double? BreakEven(CandidateCost a, CandidateCost b, double horizonDays)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(horizonDays);
        var slope = b.PerRequest - a.PerRequest;
        var offset = a.PerDay(0, horizonDays) - b.PerDay(0, horizonDays);
        if (slope == 0)
            return null;
        var volume = offset / slope;
        return volume >= 0 && double.IsFinite(volume) ? volume : null;
    }

    /// <summary>
    /// The lower envelope of the daily cost lines from 0 requests a day upward: consecutive ranges with their cheapest
    /// candidate. Ties go to the candidate listed first.
    /// </summary>
    public static IReadOnlyList<CheapestRange> CheapestByVolume(IReadOnlyList<CandidateCost> candidates, double horizonDays)
    {
        ArgumentOutOfRangeException.ThrowIfZero(candidates.Count, nameof(candidates));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(horizonDays);
        // The envelope can only change candidate where two lines cross.
        var crossings = new SortedSet<double> { 0 };
        for (var i = 0; i < candidates.Count; i++)
            for (var j = i + 1; j < candidates.Count; j++)
                if (BreakEven(candidates[i], candidates[j], horizonDays) is { } v)
                    crossings.Add(v);
        var points = crossings.ToList();
        var ranges = new List<CheapestRange>();
        for (var k = 0; k < points.Count; k++)
        {
            // The cheapest inside the range (its midpoint, or past the last crossing) owns the range.
            var probe = k + 1 < points.Count ? (points[k] + points[k + 1]) / 2 : points[k] + Math.Max(1, points[k]);
            var best = Cheapest(candidates, probe, horizonDays);
            var to = k + 1 < points.Count ? points[k + 1] : (double?)null;
            if (ranges.Count > 0 && ranges[^1].Candidate == best.Candidate)
                ranges[^1] = ranges[^1] with { ToRequestsPerDay = to };
            else
                ranges.Add(new CheapestRange(best.Candidate, points[k], to));
        }
        return ranges;
    }

    private static CandidateCost Cheapest(IReadOnlyList<CandidateCost> candidates, double requestsPerDay, double horizonDays)
    {
        var best = candidates[0];
        foreach (var c in candidates.Skip(1))
            if (c.PerDay(requestsPerDay, horizonDays) < best.PerDay(requestsPerDay, horizonDays))
                best = c;
        return best;
    }
}

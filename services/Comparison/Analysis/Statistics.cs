namespace AspireTune.Comparison.Analysis;

/// <summary>The statistics the comparison stands on: bootstrap intervals, exact McNemar, percentiles.</summary>
public static class Statistics
{
    public static double Mean(IReadOnlyList<double> values) => values.Count == 0 ? double.NaN : values.Average();

    /// <summary>Linear-interpolated percentile (the "type 7" definition numpy and R use by default); p in [0, 100].</summary>
    public static double Percentile(IReadOnlyList<double> values, double p)
    {
        if (values.Count == 0)
            return double.NaN;
        var sorted = values.Order().ToArray();
        var rank = p / 100 * (sorted.Length - 1);
        var lo = (int)Math.Floor(rank);
        var hi = (int)Math.Ceiling(rank);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
    }

    /// <summary>95% percentile-bootstrap interval of the mean (fixed seed: the same data gives the same interval).</summary>
    public static (double Lower, double Upper) BootstrapMean(IReadOnlyList<double> values, int resamples = 2000, int seed = 17)
    {
        if (values.Count == 0)
            return (double.NaN, double.NaN);
        var random = new Random(seed);
        var means = new double[resamples];
        for (var r = 0; r < resamples; r++)
        {
            double sum = 0;
            for (var i = 0; i < values.Count; i++)
                sum += values[random.Next(values.Count)];
            means[r] = sum / values.Count;
        }
        return (Percentile(means, 2.5), Percentile(means, 97.5));
    }

    /// <summary>95% paired-bootstrap interval of mean(a) - mean(b) over the same items.</summary>
    public static (double Lower, double Upper) BootstrapPairedDifference(IReadOnlyList<double> a, IReadOnlyList<double> b, int resamples = 2000, int seed = 17)
    {
        if (a.Count != b.Count)
            throw new ArgumentException("Paired samples must have the same length.");
        return BootstrapMean(a.Zip(b, (x, y) => x - y).ToList(), resamples, seed);
    }

    /// <summary>
    /// Exact two-sided McNemar test on paired correctness: only the discordant items count (b: A right and B
    /// wrong, c: the reverse); under H0 b ~ Binomial(b + c, 1/2).
    /// </summary>
    public static (int AOnly, int BOnly, double PValue) McNemar(IReadOnlyList<bool> a, IReadOnlyList<bool> b)
    {
        if (a.Count != b.Count)
            throw new ArgumentException("Paired samples must have the same length.");
        int aOnly = 0, bOnly = 0;
        for (var i = 0; i < a.Count; i++)
        {
            if (a[i] && !b[i]) aOnly++;
            else if (!a[i] && b[i]) bOnly++;
        }
        var n = aOnly + bOnly;
        if (n == 0)
            return (0, 0, 1.0);
        var k = Math.Min(aOnly, bOnly);
        // P(X <= k) for X ~ Bin(n, 0.5), in log space to stay exact for large n.
        double tail = 0;
        for (var i = 0; i <= k; i++)
            tail += Math.Exp(LogChoose(n, i) - n * Math.Log(2));
        return (aOnly, bOnly, Math.Min(1.0, 2 * tail));
    }

    private static double LogChoose(int n, int k)
    {
        double result = 0;
        for (var i = 1; i <= k; i++)
            result += Math.Log(n - k + i) - Math.Log(i);
        return result;
    }
}

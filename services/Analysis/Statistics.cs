using AspireTune.Contracts.Common;

namespace AspireTune.Analysis;

/// <summary>
/// Point estimates with percentile-bootstrap 95% intervals. Resampling is seeded, so the same results give
/// the same intervals (a rerun from the cache reproduces its summary exactly).
/// </summary>
public static class Statistics
{
    /// <summary>Mean and its 95% interval; no interval for fewer than 2 values.</summary>
    public static MetricValue Mean(string name, IReadOnlyList<double> values, int resamples, int seed) =>
        Bootstrap(name, values.Count, resamples, seed, (pick, n) =>
        {
            double sum = 0;
            for (var i = 0; i < n; i++)
                sum += values[pick(i)];
            return sum / n;
        });

    /// <summary>The p-th percentile (0-100, linear interpolation) and its 95% interval.</summary>
    public static MetricValue Percentile(string name, IReadOnlyList<double> values, double p, int resamples, int seed)
    {
        var sorted = values.Order().ToArray();
        var n = sorted.Length;
        if (n == 0)
            return new MetricValue { Name = name, Value = double.NaN };
        var estimate = PercentileOfSorted(sorted, p);
        if (n < 2)
            return new MetricValue { Name = name, Value = estimate };
        // A resample of sorted values is sorted by construction when kept as counts per position: no sort per resample.
        var random = new FastRandom(seed);
        var counts = new int[n];
        var stats = new double[resamples];
        var rank = p / 100 * (n - 1);
        var low = (int)Math.Floor(rank);
        var highIndex = Math.Min(low + 1, n - 1);
        for (var b = 0; b < resamples; b++)
        {
            Array.Clear(counts);
            for (var i = 0; i < n; i++)
                counts[random.Next(n)]++;
            double lowValue = 0, highValue = 0;
            var gotLow = false;
            for (int position = 0, seen = 0; position < n; position++)
            {
                seen += counts[position];
                if (!gotLow && seen > low)
                {
                    lowValue = sorted[position];
                    gotLow = true;
                }
                if (seen > highIndex)
                {
                    highValue = sorted[position];
                    break;
                }
            }
            stats[b] = lowValue + (highValue - lowValue) * (rank - low);
        }
        Array.Sort(stats);
        return new MetricValue { Name = name, Value = estimate, Lower = PercentileOfSorted(stats, 2.5), Upper = PercentileOfSorted(stats, 97.5) };
    }

    /// <summary>
    /// Any statistic of n units: <paramref name="statistic"/> gets a picker (position to unit index) and n. The
    /// point estimate uses the identity picker; the interval the 2.5th and 97.5th percentiles of the resamples.
    /// </summary>
    public static MetricValue Bootstrap(string name, int n, int resamples, int seed, Func<Func<int, int>, int, double> statistic)
    {
        if (n == 0)
            return new MetricValue { Name = name, Value = double.NaN };
        var estimate = statistic(i => i, n);
        if (n < 2)
            return new MetricValue { Name = name, Value = estimate };
        var random = new FastRandom(seed);
        var picks = new int[n];
        var stats = new double[resamples];
        Func<int, int> pick = i => picks[i];
        for (var b = 0; b < resamples; b++)
        {
            for (var i = 0; i < n; i++)
                picks[i] = random.Next(n);
            stats[b] = statistic(pick, n);
        }
        Array.Sort(stats);
        return new MetricValue { Name = name, Value = estimate, Lower = PercentileOfSorted(stats, 2.5), Upper = PercentileOfSorted(stats, 97.5) };
    }

    public static double PercentileOfSorted(ReadOnlySpan<double> sorted, double p)
    {
        if (sorted.Length == 0)
            return double.NaN;
        var rank = p / 100 * (sorted.Length - 1);
        var low = (int)Math.Floor(rank);
        var high = Math.Min(low + 1, sorted.Length - 1);
        return sorted[low] + (sorted[high] - sorted[low]) * (rank - low);
    }

    /// <summary>
    /// Macro-F1 of (expected, predicted) pairs: the F1 of every expected label present, averaged. A prediction
    /// outside the expected labels (e.g. <c>(other)</c>) counts as a miss for its item's label.
    /// </summary>
    public static double MacroF1(Func<int, (string Expected, string Predicted)> pair, int n)
    {
        var tp = new Dictionary<string, int>(StringComparer.Ordinal);
        var fp = new Dictionary<string, int>(StringComparer.Ordinal);
        var support = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < n; i++)
        {
            var (expected, predicted) = pair(i);
            support[expected] = support.GetValueOrDefault(expected) + 1;
            if (expected == predicted)
                tp[expected] = tp.GetValueOrDefault(expected) + 1;
            else
                fp[predicted] = fp.GetValueOrDefault(predicted) + 1;
        }
        if (support.Count == 0)
            return double.NaN;
        double sum = 0;
        foreach (var (label, count) in support)
        {
            // F1 = 2TP / (2TP + FP + FN), with FN = support - TP.
            double t = tp.GetValueOrDefault(label);
            sum += 2 * t / (t + count + fp.GetValueOrDefault(label));
        }
        return sum / support.Count;
    }

    /// <summary>
    /// Exact two-sided McNemar test on paired correctness: only the discordant items count (A right and B wrong,
    /// and the reverse); under H0 each is Binomial(discordant, 1/2). Summed in log space to stay exact for large n.
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
        double tail = 0;
        for (var i = 0; i <= Math.Min(aOnly, bOnly); i++)
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

    /// <summary>xorshift64*: fast, seedable, and good enough for resampling indices (System.Random with a seed is the slow legacy algorithm).</summary>
    private struct FastRandom(int seed)
    {
        private ulong _state = (ulong)seed * 0x9E3779B97F4A7C15UL + 0x2545F4914F6CDD1DUL | 1;

        public int Next(int bound)
        {
            _state ^= _state >> 12;
            _state ^= _state << 25;
            _state ^= _state >> 27;
            var value = (uint)((_state * 0x2545F4914F6CDD1DUL) >> 32);
            return (int)((ulong)value * (uint)bound >> 32);
        }
    }
}

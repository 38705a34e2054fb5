namespace AspireTune.Analysis;

/// <summary>
/// The verdict "candidate is not worse than reference by more than margin" with its one-sided bound.
/// <see cref="Difference"/> and <see cref="LowerBound"/> are in the scores' units (accuracy points as fractions).
/// </summary>
public sealed record NonInferiorityResult(int Items, double Difference, double StandardError, double LowerBound, double Margin, double Confidence)
{
    /// <summary>True when the one-sided lower bound of candidate minus reference lies above minus the margin.</summary>
    public bool NonInferior => LowerBound > -Margin;
}

/// <summary>
/// Non-inferiority of paired scores: both candidates scored on the same items (1/0 for correctness, or a graded
/// score such as ROUGE-L). The bound is the large-sample one: mean paired difference minus z(confidence) times its
/// standard error, the standard error from the sample variance of the differences (n - 1). For correctness this is
/// the Wald bound of a difference of paired proportions; with fewer than about 30 items it is optimistic.
/// </summary>
public static class NonInferiority
{
    public static NonInferiorityResult Test(IReadOnlyList<double> candidate, IReadOnlyList<double> reference, double margin, double confidence = 0.95)
    {
        ArgumentOutOfRangeException.ThrowIfNotEqual(candidate.Count, reference.Count, nameof(reference));
        ArgumentOutOfRangeException.ThrowIfLessThan(candidate.Count, 2, nameof(candidate));
        ArgumentOutOfRangeException.ThrowIfNegative(margin);
        if (confidence is <= 0.5 or >= 1)
            throw new ArgumentOutOfRangeException(nameof(confidence), confidence, "The confidence must lie in (0.5, 1).");
        var n = candidate.Count;
        var mean = 0.0;
        for (var i = 0; i < n; i++)
            mean += candidate[i] - reference[i];
        mean /= n;
        var squares = 0.0;
        for (var i = 0; i < n; i++)
        {
            var d = candidate[i] - reference[i] - mean;
            squares += d * d;
        }
        var se = Math.Sqrt(squares / (n - 1) / n);
        return new NonInferiorityResult(n, mean, se, mean - NormalQuantile(confidence) * se, margin, confidence);
    }

    /// <summary>The standard normal quantile (Acklam's rational approximation: relative error below 1.2e-9).</summary>
    public static double NormalQuantile(double p)
    {
        if (p is <= 0 or >= 1)
            throw new ArgumentOutOfRangeException(nameof(p), p, "p must lie in (0, 1).");
        ReadOnlySpan<double> a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00];
        ReadOnlySpan<double> b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01];
        ReadOnlySpan<double> c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00];
        ReadOnlySpan<double> d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00];
        const double low = 0.02425;
        double x;
        if (p < low)
        {
            var q = Math.Sqrt(-2 * Math.Log(p));
            x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
        }
        else if (p <= 1 - low)
        {
            var q = p - 0.5;
            var r = q * q;
            x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
        }
        else
        {
            var q = Math.Sqrt(-2 * Math.Log(1 - p));
            x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
        }
        return x;
    }
}

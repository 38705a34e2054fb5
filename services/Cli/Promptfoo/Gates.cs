using System.Globalization;
using System.Text.RegularExpressions;
using AspireTune.Analysis;
using AspireTune.Cli.Infrastructure;

namespace AspireTune.Cli.Promptfoo;

/// <summary>One result of <c>aspiretune eval</c>: a test x prompt x provider x repeat.</summary>
public sealed record EvalRow(int Test, string? Description, IReadOnlyDictionary<string, string> Vars, string Prompt, string Provider, int Repeat, bool Pass,
    bool QualityPass, bool HasQualityChecks, string? Output, string? Error, IReadOnlyList<string> FailedAssertions, double LatencyMs, double CostUsd);

/// <summary>What a gate decided, and on which numbers.</summary>
public sealed record GateOutcome(string Gate, bool Passed, string Detail);

/// <summary>
/// CI gates for <c>--fail-on</c>: <c>METRIC&lt;LIMIT</c> or <c>METRIC&gt;LIMIT</c>, optionally for one candidate
/// (<c>METRIC[CANDIDATE]&lt;LIMIT</c>; without one every prompt x provider must pass), and
/// <c>X worse-than Y by MARGIN</c> (a one-sided 95% non-inferiority test of X's pass rate against Y's on the
/// same tests). Metrics: <c>pass-rate</c>, <c>accuracy</c> (the answer checks only: everything but latency, cost and
/// JSON-format assertions), <c>error-rate</c>, <c>latency-p50</c>, <c>latency-p95</c>, <c>latency-mean</c> (ms),
/// <c>cost</c> (USD in total), <c>cost-per-1k</c> (USD per 1,000 calls). A candidate is named by its provider label,
/// its prompt label, or <c>PROMPT|PROVIDER</c>.
/// </summary>
public abstract partial record Gate(string Text)
{
    public static readonly IReadOnlyList<string> Metrics = ["pass-rate", "accuracy", "error-rate", "latency-p50", "latency-p95", "latency-mean", "cost", "cost-per-1k"];

    [GeneratedRegex(@"^\s*(?<metric>[a-z0-9-]+)\s*(\[(?<candidate>[^\]]+)\])?\s*(?<op><=|>=|<|>)\s*(?<limit>[-+]?[0-9]*\.?[0-9]+(e[-+]?[0-9]+)?)\s*$", RegexOptions.IgnoreCase)]
    private static partial Regex Threshold();

    [GeneratedRegex(@"^\s*(?<x>.+?)\s+worse-than\s+(?<y>.+?)\s+by\s+(?<margin>[0-9]*\.?[0-9]+)\s*$", RegexOptions.IgnoreCase)]
    private static partial Regex Worse();

    public static Gate Parse(string text)
    {
        if (Worse().Match(text) is { Success: true } w)
            return new NonInferiorityGate(text, w.Groups["x"].Value, w.Groups["y"].Value, double.Parse(w.Groups["margin"].Value, CultureInfo.InvariantCulture));
        if (Threshold().Match(text) is { Success: true } t)
        {
            var metric = t.Groups["metric"].Value.ToLowerInvariant();
            if (!Metrics.Contains(metric))
                throw new CliException($"--fail-on '{text}': unknown metric '{metric}' (metrics: {string.Join(", ", Metrics)}).", ExitCodes.Usage);
            return new ThresholdGate(text, metric, t.Groups["candidate"].Success ? t.Groups["candidate"].Value.Trim() : null, t.Groups["op"].Value,
                double.Parse(t.Groups["limit"].Value, CultureInfo.InvariantCulture));
        }
        throw new CliException($"--fail-on '{text}' is not a gate: write METRIC<LIMIT (e.g. pass-rate<0.9, latency-p95>2000, cost>1.5), METRIC[CANDIDATE]<LIMIT, or 'X worse-than Y by 0.05'.", ExitCodes.Usage);
    }

    /// <summary>Checks the gate; a candidate name that matches nothing is a usage error.</summary>
    public abstract IEnumerable<GateOutcome> Evaluate(IReadOnlyList<EvalRow> rows);

    internal static List<EvalRow> Select(IReadOnlyList<EvalRow> rows, string candidate, string gate)
    {
        var selected = rows.Where(r => r.Provider == candidate || r.Prompt == candidate || $"{r.Prompt}|{r.Provider}" == candidate).ToList();
        return selected.Count > 0 ? selected : throw new CliException(
            $"--fail-on '{gate}': no candidate '{candidate}' (providers: {string.Join(", ", rows.Select(r => r.Provider).Distinct())}; prompts: {string.Join(", ", rows.Select(r => r.Prompt).Distinct())}).", ExitCodes.Usage);
    }

    /// <summary>The metric over some rows; null when it has no value (accuracy without answer checks).</summary>
    internal static double? Measure(string metric, IReadOnlyList<EvalRow> rows)
    {
        var ok = rows.Where(r => r.Error is null).ToList();
        return metric switch
        {
            "pass-rate" => rows.Count(r => r.Pass) / (double)rows.Count,
            "accuracy" => rows.Any(r => r.HasQualityChecks) ? rows.Count(r => r.HasQualityChecks && r.QualityPass) / (double)rows.Count(r => r.HasQualityChecks) : null,
            "error-rate" => rows.Count(r => r.Error is not null) / (double)rows.Count,
            "latency-p50" => ok.Count == 0 ? null : Statistics.PercentileOfSorted(ok.Select(r => r.LatencyMs).Order().ToArray(), 50),
            "latency-p95" => ok.Count == 0 ? null : Statistics.PercentileOfSorted(ok.Select(r => r.LatencyMs).Order().ToArray(), 95),
            "latency-mean" => ok.Count == 0 ? null : ok.Average(r => r.LatencyMs),
            "cost" => rows.Sum(r => r.CostUsd),
            "cost-per-1k" => rows.Average(r => r.CostUsd) * 1000,
            _ => throw new ArgumentOutOfRangeException(nameof(metric), metric, null),
        };
    }
}

/// <summary><c>METRIC[CANDIDATE]&lt;LIMIT</c>: fails when the measured value satisfies the comparison.</summary>
public sealed record ThresholdGate(string Text, string Metric, string? Candidate, string Operator, double Limit) : Gate(Text)
{
    public override IEnumerable<GateOutcome> Evaluate(IReadOnlyList<EvalRow> rows)
    {
        var groups = Candidate is { } c
            ? [(Name: c, Rows: Select(rows, c, Text))]
            : rows.GroupBy(r => $"{r.Prompt}|{r.Provider}").Select(g => (Name: g.Key, Rows: g.ToList())).ToList();
        foreach (var (name, selected) in groups)
        {
            var value = Measure(Metric, selected);
            if (value is null)
            {
                yield return new GateOutcome(Text, false, $"{name}: {Metric} has no value (no results with answer checks)");
                continue;
            }
            var failed = Operator switch
            {
                "<" => value < Limit,
                "<=" => value <= Limit,
                ">" => value > Limit,
                _ => value >= Limit,
            };
            yield return new GateOutcome(Text, !failed, string.Create(CultureInfo.InvariantCulture, $"{name}: {Metric} = {value:0.####}"));
        }
    }
}

/// <summary><c>X worse-than Y by M</c>: fails unless X's pass rate is shown not worse than Y's by more than M (one-sided 95%).</summary>
public sealed record NonInferiorityGate(string Text, string Candidate, string Reference, double Margin) : Gate(Text)
{
    public override IEnumerable<GateOutcome> Evaluate(IReadOnlyList<EvalRow> rows)
    {
        var x = Select(rows, Candidate, Text);
        var y = Select(rows, Reference, Text);
        // Paired on the same test and repeat, and on the dimension the two names do not fix (prompt or provider).
        var byProvider = x.All(r => r.Provider == Candidate);
        string Key(EvalRow r) => $"{r.Test}|{r.Repeat}|{(byProvider ? r.Prompt : r.Provider)}";
        var reference = y.GroupBy(Key).ToDictionary(g => g.Key, g => g.First());
        var pairs = x.Where(r => reference.ContainsKey(Key(r))).Select(r => (X: r.Pass ? 1.0 : 0.0, Y: reference[Key(r)].Pass ? 1.0 : 0.0)).ToList();
        if (pairs.Count < 2)
        {
            yield return new GateOutcome(Text, false, $"{Candidate} and {Reference} share {pairs.Count} tests; the comparison needs at least 2");
            yield break;
        }
        var test = NonInferiority.Test(pairs.Select(p => p.X).ToList(), pairs.Select(p => p.Y).ToList(), Margin);
        yield return new GateOutcome(Text, test.NonInferior, string.Create(CultureInfo.InvariantCulture,
            $"{Candidate} - {Reference} pass rate = {test.Difference:+0.000;-0.000;0.000}, one-sided 95% lower bound {test.LowerBound:+0.000;-0.000;0.000} vs margin -{Margin:0.###} on {test.Items} paired results"));
    }
}

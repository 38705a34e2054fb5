using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using AspireTune.Comparison.Analysis;
using AspireTune.Contracts.Comparison;

namespace AspireTune.Comparison.Reports;

/// <summary>The decision report: one self-contained HTML page with charts, and the same facts as JSON.</summary>
public static class ReportWriter
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public static string ToJson(string experimentName, CurationReport curation, ComparisonResult result) =>
        JsonSerializer.Serialize(new ExperimentReport
        {
            Experiment = experimentName,
            Curation = curation,
            Winner = result.Winner,
            Decision = result.Decision,
            Candidates = result.Candidates,
            Pairwise = result.Pairwise,
        }, Json);

    public static string ToHtml(string experimentName, CurationReport curation, ComparisonResult result, DateTimeOffset generatedAt)
    {
        static string E(string s) => WebUtility.HtmlEncode(s);
        static string Ms(double seconds) => double.IsFinite(seconds) ? (seconds * 1000).ToString("0.0", CultureInfo.InvariantCulture) : "n/a";
        var c = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>").Append(E(experimentName)).Append(" - AspireTune decision report</title>");
        sb.Append("<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;color:#222}table{border-collapse:collapse;margin:12px 0}");
        sb.Append("td,th{border:1px solid #ddd;padding:4px 7px;text-align:right;font-size:13px;white-space:nowrap}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}");
        sb.Append(".decision{background:#eef6ee;border-left:4px solid #55A868;padding:12px 16px}.warn{color:#8a5300}figure{margin:18px 0}</style></head><body>");
        sb.Append(c, $"<h1>{E(experimentName)}</h1><p>Generated {generatedAt:yyyy-MM-dd HH:mm} UTC by AspireTune.</p>");
        sb.Append(c, $"<h2>Decision</h2><p class=\"decision\"><strong>{E(result.Winner)}</strong>. {E(result.Decision)}</p>");

        sb.Append("<h2>Quality, latency and cost</h2><figure>");
        sb.Append(Svg.BarsWithIntervals("Accuracy on the held-out test split (95% bootstrap CI)",
            result.Candidates.Select(s => (s.Name, s.Accuracy, s.AccuracyLower, s.AccuracyUpper)).ToList()));
        sb.Append("</figure><figure>");
        sb.Append(Svg.Scatter("Accuracy against cost (Pareto front dashed)", "USD per 1,000 requests", "accuracy",
            result.Candidates.Select(s => (s.Name, s.CostPer1k, s.Accuracy, s.OnParetoFront)).ToList()));
        sb.Append("</figure><figure>");
        sb.Append(Svg.Scatter("Accuracy against p95 latency (Pareto front dashed)", "p95 latency per request (ms)", "accuracy",
            result.Candidates.Select(s => (s.Name, s.LatencyP95 * 1000, s.Accuracy, s.OnParetoFront)).ToList()));
        sb.Append("</figure><figure>");
        sb.Append(Svg.GroupedBars("Latency per request", "ms", ["p50", "p95", "p99"],
            result.Candidates.Select(s => (s.Name, new[] { s.LatencyP50 * 1000, s.LatencyP95 * 1000, s.LatencyP99 * 1000 })).ToList()));
        sb.Append("</figure>");

        sb.Append("<table><tr><th>candidate</th><th>kind</th><th>items</th><th>errors</th><th>accuracy</th><th>95% CI</th><th>macro-F1</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>USD / 1k</th><th>Pareto</th></tr>");
        foreach (var s in result.Candidates)
            sb.Append(c, $"<tr><td>{E(s.Name)}</td><td>{E(s.Kind.ToWireName())}</td><td>{s.Items}</td><td>{s.Errors}</td><td>{s.Accuracy:P1}</td><td>{s.AccuracyLower:P1} - {s.AccuracyUpper:P1}</td><td>{s.MacroF1:0.000}</td><td>{Ms(s.LatencyP50)}</td><td>{Ms(s.LatencyP95)}</td><td>{Ms(s.LatencyP99)}</td><td>{s.CostPer1k:0.####}</td><td>{(s.OnParetoFront ? "yes" : "")}</td></tr>");
        sb.Append("</table>");

        if (result.Pairwise.Count > 0)
        {
            sb.Append("<h2>Paired tests against the most accurate candidate</h2><table><tr><th>A</th><th>B</th><th>accuracy A - B</th><th>95% CI</th><th>only A right</th><th>only B right</th><th>McNemar p</th></tr>");
            foreach (var p in result.Pairwise)
                sb.Append(c, $"<tr><td>{E(p.A)}</td><td>{E(p.B)}</td><td>{p.Difference:+0.0%;-0.0%;0.0%}</td><td>{p.DifferenceLower:+0.0%;-0.0%;0.0%} - {p.DifferenceUpper:+0.0%;-0.0%;0.0%}</td><td>{p.AOnlyCorrect}</td><td>{p.BOnlyCorrect}</td><td>{p.McNemarP:0.####}</td></tr>");
            sb.Append("</table>");
        }

        sb.Append("<h2>Data curation</h2><table>");
        foreach (var (k, v) in new (string, string)[]
        {
            ("lines received", curation.Received.ToString(c)), ("unreadable lines", curation.FormatErrors.ToString(c)),
            ("exact duplicates removed", curation.ExactDuplicatesRemoved.ToString(c)),
            ($"near duplicates removed (Jaccard >= {curation.NearDuplicateThreshold:0.00} on word 3-shingles)", curation.NearDuplicatesRemoved.ToString(c)),
            ("conflicting labels removed", curation.ConflictingLabelsRemoved.ToString(c)), ("kept", curation.Kept.ToString(c)),
            ("train / validation / test", $"{curation.Train} / {curation.Validation} / {curation.Test}"),
            ("label imbalance (max:min)", curation.ImbalanceRatio.ToString("0.00", c)),
            ("near duplicates across train and test (leakage)", curation.CrossSplitNearDuplicates.ToString(c)),
        })
            sb.Append(c, $"<tr><td>{E(k)}</td><td>{E(v)}</td></tr>");
        sb.Append("</table><p>Labels: ").Append(E(string.Join(", ", curation.LabelCounts.Select(kv => $"{kv.Key} {kv.Value}")))).Append("</p>");
        foreach (var w in curation.Warnings)
            sb.Append("<p class=\"warn\">").Append(E(w)).Append("</p>");
        return sb.Append("</body></html>").ToString();
    }
}

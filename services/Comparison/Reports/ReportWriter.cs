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
            Task = result.Task,
            PrimaryMetric = result.PrimaryMetric,
            Curation = curation,
            Winner = result.Winner,
            Decision = result.Decision,
            Candidates = result.Candidates,
            Pairwise = result.Pairwise,
            NonInferiority = result.NonInferiority,
            CostHorizonDays = result.CostHorizonDays,
            Costs = result.Costs.Select(x => new OwnershipCost { Candidate = x.Candidate, OneOffUsd = x.OneOff, FixedPerDayUsd = x.FixedPerDay, PerRequestUsd = x.PerRequest }).ToList(),
            CheapestByVolume = Ranges(result.CheapestByVolume),
            CheapestAcceptableByVolume = Ranges(result.CheapestAcceptableByVolume),
            Confusion = result.Confusion,
            Training = result.Training,
        }, Json);

    private static List<CheapestVolumeRange> Ranges(IEnumerable<AspireTune.Analysis.CheapestRange> ranges) =>
        ranges.Select(r => new CheapestVolumeRange { Candidate = r.Candidate, FromRequestsPerDay = r.FromRequestsPerDay, ToRequestsPerDay = r.ToRequestsPerDay }).ToList();

    private static string Examples(CandidateSummary s) =>
        s.ExamplesShownMean is { } shown
            ? string.Create(CultureInfo.InvariantCulture, $"{shown:0.#} of {s.ExamplesRetrievedMean ?? shown:0.#}{(s.InputsTruncated > 0 ? $", {s.InputsTruncated} inputs cut" : "")}")
            : s.InputsTruncated > 0 ? $"{s.InputsTruncated} inputs cut" : "";

    /// <summary>Non-inferiority and the total cost of ownership: the verdicts, the cost lines and where they cross.</summary>
    private static void AppendDecisionDetails(StringBuilder sb, ComparisonResult result)
    {
        static string E(string s) => WebUtility.HtmlEncode(s);
        var c = CultureInfo.InvariantCulture;
        if (result.NonInferiority.Count > 0)
        {
            var v0 = result.NonInferiority[0];
            sb.Append(c, $"<h2>Non-inferiority against {E(v0.Reference)} (margin {v0.Margin * 100:0.#} points, one-sided {v0.Confidence:P0} bound)</h2>");
            sb.Append("<table><tr><th>candidate</th><th>items</th><th>accuracy difference</th><th>lower bound</th><th>verdict</th></tr>");
            foreach (var v in result.NonInferiority)
                sb.Append(c, $"<tr><td>{E(v.Candidate)}</td><td>{v.Items}</td><td>{v.Difference * 100:+0.0;-0.0;0.0} pts</td><td>{v.LowerBound * 100:+0.0;-0.0;0.0} pts</td><td>{(v.NonInferior ? "non-inferior" : "not shown non-inferior")}</td></tr>");
            sb.Append("</table>");
        }
        if (result.Costs.Count == 0)
            return;
        sb.Append(c, $"<h2>Total cost of ownership (one-off costs spread over {result.CostHorizonDays:0.#} days)</h2><figure>");
        var breakEvens = result.CheapestByVolume.Skip(1).Select(r => r.FromRequestsPerDay).ToList();
        var maxVolume = Math.Max(1000, breakEvens.DefaultIfEmpty(0).Max() * 2);
        sb.Append(Svg.CostLines("Daily cost against volume (dashed: where the cheapest candidate changes)",
            result.Costs.Select(x => (x.Candidate, x.PerDay(0, result.CostHorizonDays), x.PerRequest)).ToList(), breakEvens, maxVolume));
        sb.Append("</figure><table><tr><th>candidate</th><th>one-off USD</th><th>fixed USD / day</th><th>USD / request</th><th>cheapest from (requests a day)</th></tr>");
        foreach (var x in result.Costs)
        {
            var ranges = result.CheapestByVolume.Where(r => r.Candidate == x.Candidate).Select(r => r.ToRequestsPerDay is { } to ? $"{Ownership.Volume(r.FromRequestsPerDay)} to {Ownership.Volume(to)}" : $"{Ownership.Volume(r.FromRequestsPerDay)} up").ToList();
            sb.Append(c, $"<tr><td>{E(x.Candidate)}</td><td>{x.OneOff:0.####}</td><td>{x.FixedPerDay:0.####}</td><td>{x.PerRequest:0.########}</td><td>{E(ranges.Count == 0 ? "never" : string.Join("; ", ranges))}</td></tr>");
        }
        sb.Append("</table>");
    }

    /// <summary>Classification: accuracy with its interval, invalid answers, likelihood accuracy, macro-F1, latency and cost.</summary>
    private static void AppendClassificationTable(StringBuilder sb, ComparisonResult result)
    {
        static string E(string s) => WebUtility.HtmlEncode(s);
        static string Ms(double seconds) => double.IsFinite(seconds) ? (seconds * 1000).ToString("0.0", CultureInfo.InvariantCulture) : "n/a";
        var c = CultureInfo.InvariantCulture;
        sb.Append("<table><tr><th>candidate</th><th>kind</th><th>items</th><th>errors</th><th>invalid</th><th>accuracy</th><th>95% CI</th><th>by likelihood</th><th>macro-F1</th><th>examples seen</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>USD / 1k</th><th>Pareto</th></tr>");
        foreach (var s in result.Candidates)
            sb.Append(c, $"<tr><td>{E(s.Name)}</td><td>{E(s.Kind.ToWireName())}</td><td>{s.Items}</td><td>{s.Errors}</td><td>{s.Invalid} ({(s.Items == 0 ? 0 : 100.0 * s.Invalid / s.Items):0}%)</td><td>{s.Accuracy:P1}</td><td>{s.AccuracyLower:P1} - {s.AccuracyUpper:P1}</td><td>{(s.LikelihoodAccuracy is { } la ? la.ToString("P1", c) : "")}</td><td>{s.MacroF1:0.000}</td><td>{Examples(s)}</td><td>{Ms(s.LatencyP50)}</td><td>{Ms(s.LatencyP95)}</td><td>{Ms(s.LatencyP99)}</td><td>{s.CostPer1k:0.####}</td><td>{(s.OnParetoFront ? "yes" : "")}</td></tr>");
        sb.Append("</table><p>Invalid: the answer names no label (a near-miss of one included); counted as wrong, and apart from wrong labels. By likelihood: accuracy when the answer is the label the model finds most likely after the prompt (where the endpoint can score). Examples seen: mean number of retrieved examples the prompt held after fitting the model's context, of those retrieved.</p>");
    }

    /// <summary>Generation: every score's mean per candidate (the primary one first, as ranked), then latency and cost.</summary>
    private static void AppendGenerationTable(StringBuilder sb, ComparisonResult result)
    {
        static string E(string s) => WebUtility.HtmlEncode(s);
        static string Ms(double seconds) => double.IsFinite(seconds) ? (seconds * 1000).ToString("0.0", CultureInfo.InvariantCulture) : "n/a";
        var c = CultureInfo.InvariantCulture;
        var names = result.Candidates.SelectMany(s => s.Metrics.Select(m => m.Name)).Distinct(StringComparer.Ordinal)
            .OrderBy(n => n == result.PrimaryMetric ? 0 : 1).ThenBy(n => n, StringComparer.Ordinal).ToList();
        sb.Append("<table><tr><th>candidate</th><th>kind</th><th>items</th><th>errors</th>");
        foreach (var n in names)
            sb.Append("<th>").Append(E(n)).Append(n == result.PrimaryMetric ? " (primary)" : "").Append("</th>");
        sb.Append("<th>95% CI (primary)</th><th>examples seen</th><th>p50 ms</th><th>p95 ms</th><th>USD / 1k</th><th>Pareto</th></tr>");
        foreach (var s in result.Candidates)
        {
            sb.Append(c, $"<tr><td>{E(s.Name)}</td><td>{E(s.Kind.ToWireName())}</td><td>{s.Items}</td><td>{s.Errors}</td>");
            foreach (var n in names)
                sb.Append("<td>").Append(s.Metrics.FirstOrDefault(m => m.Name == n) is { } m ? m.Value.ToString("P1", c) : "").Append("</td>");
            sb.Append(c, $"<td>{s.AccuracyLower:P1} - {s.AccuracyUpper:P1}</td><td>{Examples(s)}</td><td>{Ms(s.LatencyP50)}</td><td>{Ms(s.LatencyP95)}</td><td>{s.CostPer1k:0.####}</td><td>{(s.OnParetoFront ? "yes" : "")}</td></tr>");
        }
        sb.Append("</table><p>Scores per item in [0, 1], averaged over the test items (a failed call scores 0): exact: the answer equals the reference; token_f1: word overlap (SQuAD F1); rouge_l: longest common word subsequence (F1); json_fields: share of the reference's JSON fields the answer repeats; judge: the judge model's grade / 10.</p>");
    }

    /// <summary>The fine-tuned candidate's training and validation loss by step, the best step marked, and the fit verdict with its rule.</summary>
    private static void AppendTraining(StringBuilder sb, ComparisonResult result)
    {
        static string E(string s) => WebUtility.HtmlEncode(s);
        if (result.Training is not { } fit)
            return;
        sb.Append("<h2>Fine-tuning: loss curves and fit (").Append(E(fit.Candidate)).Append(")</h2><figure>");
        sb.Append(Svg.LossCurves("Training and validation loss by step (dashed: the best step, kept)",
            fit.Curve.Select(p => (p.Step, p.TrainLoss, p.ValidLoss)).ToList(), fit.BestStep));
        sb.Append("</figure><p><strong>Fit: ").Append(E(TrainingFits.Name(fit.Verdict))).Append(".</strong> ").Append(E(fit.Advice ?? ""))
            .Append("</p><p>Rule: ").Append(E(fit.Rule)).Append("</p>");
    }

    private static void AppendConfusion(StringBuilder sb, ComparisonResult result)
    {
        static string E(string s) => WebUtility.HtmlEncode(s);
        if (result.Confusion.Count == 0)
            return;
        sb.Append("<h2>Confusion matrices (rows: expected label; columns: answer)</h2>");
        foreach (var m in result.Confusion)
        {
            sb.Append("<h3>").Append(E(m.Candidate)).Append("</h3><table><tr><th>expected \\ answered</th>");
            foreach (var col in m.Columns)
                sb.Append("<th>").Append(E(col)).Append("</th>");
            sb.Append("</tr>");
            for (var r = 0; r < m.Labels.Count; r++)
            {
                sb.Append("<tr><td>").Append(E(m.Labels[r])).Append("</td>");
                for (var k = 0; k < m.Columns.Count; k++)
                    sb.Append(k == r ? "<td><strong>" : "<td>").Append(m.Counts[r][k]).Append(k == r ? "</strong></td>" : "</td>");
                sb.Append("</tr>");
            }
            sb.Append("</table>");
        }
    }

    public static string ToHtml(string experimentName, CurationReport curation, ComparisonResult result, DateTimeOffset generatedAt)
    {
        static string E(string s) => WebUtility.HtmlEncode(s);
        var c = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>").Append(E(experimentName)).Append(" - AspireTune decision report</title>");
        sb.Append("<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;color:#222}table{border-collapse:collapse;margin:12px 0}");
        sb.Append("td,th{border:1px solid #ddd;padding:4px 7px;text-align:right;font-size:13px;white-space:nowrap}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}");
        sb.Append(".decision{background:#eef6ee;border-left:4px solid #55A868;padding:12px 16px}.warn{color:#8a5300}figure{margin:18px 0}</style></head><body>");
        sb.Append(c, $"<h1>{E(experimentName)}</h1><p>Generated {generatedAt:yyyy-MM-dd HH:mm} UTC by AspireTune.</p>");
        sb.Append(c, $"<h2>Decision</h2><p class=\"decision\"><strong>{E(result.Winner)}</strong>. {E(result.Decision)}</p>");

        var generation = result.Task == ExperimentTask.Generation;
        var quality = generation ? "Mean " + result.PrimaryMetric : "Accuracy";
        var axis = generation ? result.PrimaryMetric : "accuracy";
        sb.Append("<h2>Quality, latency and cost</h2><figure>");
        sb.Append(Svg.BarsWithIntervals($"{quality} on the held-out test split (95% bootstrap CI)",
            result.Candidates.Select(s => (s.Name, s.Accuracy, s.AccuracyLower, s.AccuracyUpper)).ToList()));
        sb.Append("</figure><figure>");
        sb.Append(Svg.Scatter($"{quality} against cost (Pareto front dashed)", "USD per 1,000 requests", axis,
            result.Candidates.Select(s => (s.Name, s.CostPer1k, s.Accuracy, s.OnParetoFront)).ToList()));
        sb.Append("</figure><figure>");
        sb.Append(Svg.Scatter($"{quality} against p95 latency (Pareto front dashed)", "p95 latency per request (ms)", axis,
            result.Candidates.Select(s => (s.Name, s.LatencyP95 * 1000, s.Accuracy, s.OnParetoFront)).ToList()));
        sb.Append("</figure><figure>");
        sb.Append(Svg.GroupedBars("Latency per request", "ms", ["p50", "p95", "p99"],
            result.Candidates.Select(s => (s.Name, new[] { s.LatencyP50 * 1000, s.LatencyP95 * 1000, s.LatencyP99 * 1000 })).ToList()));
        sb.Append("</figure>");

        if (generation)
            AppendGenerationTable(sb, result);
        else
            AppendClassificationTable(sb, result);
        AppendDecisionDetails(sb, result);

        if (result.Pairwise.Count > 0)
        {
            sb.Append(generation
                ? $"<h2>Paired tests against the highest-scoring candidate</h2><table><tr><th>A</th><th>B</th><th>{E(result.PrimaryMetric)} A - B</th><th>95% CI</th><th>A higher</th><th>B higher</th><th>sign test p</th></tr>"
                : "<h2>Paired tests against the most accurate candidate</h2><table><tr><th>A</th><th>B</th><th>accuracy A - B</th><th>95% CI</th><th>only A right</th><th>only B right</th><th>McNemar p</th></tr>");
            foreach (var p in result.Pairwise)
                sb.Append(c, $"<tr><td>{E(p.A)}</td><td>{E(p.B)}</td><td>{p.Difference:+0.0%;-0.0%;0.0%}</td><td>{p.DifferenceLower:+0.0%;-0.0%;0.0%} - {p.DifferenceUpper:+0.0%;-0.0%;0.0%}</td><td>{p.AOnlyCorrect}</td><td>{p.BOnlyCorrect}</td><td>{E(Comparer.FormatP(p.McNemarP))}</td></tr>");
            sb.Append("</table>");
        }

        AppendTraining(sb, result);
        AppendConfusion(sb, result);
        sb.Append("<h2>Data curation</h2><table>");
        foreach (var (k, v) in new (string, string)[]
        {
            ("lines received", curation.Received.ToString(c)), ("unreadable lines", curation.FormatErrors.ToString(c)),
            ("exact duplicates removed", curation.ExactDuplicatesRemoved.ToString(c)),
            ($"near duplicates removed (Jaccard >= {curation.NearDuplicateThreshold:0.00} on word 3-shingles)", curation.NearDuplicatesRemoved.ToString(c)),
            (generation ? "inputs with conflicting references removed" : "conflicting labels removed", curation.ConflictingLabelsRemoved.ToString(c)), ("kept", curation.Kept.ToString(c)),
            ("train / validation / test", $"{curation.Train} / {curation.Validation} / {curation.Test}"),
            ("label imbalance (max:min)", curation.ImbalanceRatio.ToString("0.00", c)),
            ("near duplicates across train and test (leakage)", curation.CrossSplitNearDuplicates.ToString(c)),
        })
            sb.Append(c, $"<tr><td>{E(k)}</td><td>{E(v)}</td></tr>");
        sb.Append("</table>");
        if (generation)
            sb.Append("<p>References: ").Append(E(curation.ReferenceFields is { } fields ? $"JSON objects with fields {string.Join(", ", fields)}" : "free text"))
                .Append(c, $"; the longest is {curation.LongestReference} characters.</p>");
        else
            sb.Append("<p>Labels: ").Append(E(string.Join(", ", curation.LabelCounts.Select(kv => $"{kv.Key} {kv.Value}")))).Append("</p>");
        foreach (var w in curation.Warnings)
            sb.Append("<p class=\"warn\">").Append(E(w)).Append("</p>");
        return sb.Append("</body></html>").ToString();
    }
}

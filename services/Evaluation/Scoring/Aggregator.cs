using System.Text.Json;
using AspireTune.Analysis;
using AspireTune.Contracts.Common;
using AspireTune.Contracts.Evaluation;
using AspireTune.Evaluation.Data;
using AspireTune.Evaluation.Datasets;

namespace AspireTune.Evaluation.Scoring;

/// <summary>
/// Summaries per prompt x endpoint pair. Item-level metrics (scores, consistency) first average an item's
/// repeats and then resample items; call-level metrics (latency, tokens, cost, errors) resample calls.
/// </summary>
public static class Aggregator
{
    public static EvaluationSummary Summarize(string prompt, string endpoint, int pairSeed, IReadOnlyList<ItemResultEntity> results,
        IReadOnlyList<DatasetItem> items, bool labelScorer, int repeats, int resamples)
    {
        var ok = results.Where(r => r.Error is null).ToList();
        var metrics = new List<MetricValue>();
        var seed = pairSeed;

        // Scores: the per-item mean over repeats, one value per item that got the score.
        var scores = ok.Select(r => (r.Item, Scores: r.Scores ?? [])).ToList();
        foreach (var name in scores.SelectMany(s => s.Scores.Keys).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
        {
            var perItem = scores.Where(s => s.Scores.ContainsKey(name)).GroupBy(s => s.Item).Select(g => g.Average(s => s.Scores[name])).ToList();
            metrics.Add(Statistics.Mean(name == "label" ? "label_accuracy" : name, perItem, resamples, seed));
        }

        var confusion = new List<ConfusionCell>();
        if (labelScorer)
        {
            var pairs = ok.Where(r => r.Predicted is not null && items[r.Item].Expected is not null)
                .Select(r => (r.Item, Expected: Scorer.Normalize(items[r.Item].Expected!), Predicted: r.Predicted!)).ToList();
            var byItem = pairs.GroupBy(p => p.Item).Select(g => g.Select(p => (p.Expected, p.Predicted)).ToArray()).ToArray();
            metrics.Add(Statistics.Bootstrap("macro_f1", byItem.Length, resamples, seed, (pick, n) =>
            {
                var flat = new List<(string, string)>(n * repeats);
                for (var i = 0; i < n; i++)
                    flat.AddRange(byItem[pick(i)]);
                return Statistics.MacroF1(j => flat[j], flat.Count);
            }));
            confusion = pairs.GroupBy(p => (p.Expected, p.Predicted))
                .Select(g => new ConfusionCell { Expected = g.Key.Expected, Predicted = g.Key.Predicted, Count = g.Count() })
                .OrderBy(c => c.Expected, StringComparer.Ordinal).ThenBy(c => c.Predicted, StringComparer.Ordinal).ToList();
        }

        if (repeats > 1)
        {
            var agreement = ok.GroupBy(r => r.Item).Where(g => g.Count() > 1).Select(g =>
            {
                var outputs = g.Select(r => Scorer.Normalize(r.Output ?? "")).ToList();
                return outputs.GroupBy(o => o, StringComparer.Ordinal).Max(o => o.Count()) / (double)outputs.Count;
            }).ToList();
            metrics.Add(Statistics.Mean("consistency", agreement, resamples, seed));
        }

        var latencies = ok.Select(r => r.LatencyMs / 1000).ToList();
        metrics.Add(Statistics.Mean("latency_mean_s", latencies, resamples, seed + 1));
        metrics.Add(Statistics.Percentile("latency_p50_s", latencies, 50, resamples, seed + 1));
        metrics.Add(Statistics.Percentile("latency_p95_s", latencies, 95, resamples, seed + 1));
        metrics.Add(Statistics.Mean("input_tokens_mean", ok.Select(r => (double)r.InputTokens).ToList(), resamples, seed + 1));
        metrics.Add(Statistics.Mean("output_tokens_mean", ok.Select(r => (double)r.OutputTokens).ToList(), resamples, seed + 1));
        var perThousand = Statistics.Mean("cost_per_1k_requests_usd", ok.Select(r => r.CostUsd * 1000).ToList(), resamples, seed + 1);
        metrics.Add(perThousand);
        metrics.Add(new MetricValue { Name = "cost_usd_total", Value = results.Sum(r => r.CostUsd) });
        metrics.Add(Statistics.Mean("error_rate", results.Select(r => r.Error is null ? 0.0 : 1.0).ToList(), resamples, seed + 2));
        metrics.Add(new MetricValue { Name = "cached_calls", Value = results.Count(r => r.Cached) });

        return new EvaluationSummary
        {
            Prompt = prompt,
            ModelEndpoint = endpoint,
            Items = ok.Count,
            Errors = results.Count - ok.Count,
            Metrics = metrics.Where(m => !double.IsNaN(m.Value)).ToList(),
            ConfusionMatrix = confusion,
        };
    }
}

using AspireTune.Comparison.Analysis;
using AspireTune.Comparison.Curation;
using AspireTune.Comparison.Data;
using AspireTune.Contracts.Datasets;

namespace AspireTune.Comparison.Workflow;

/// <summary>The kNN baseline's answers (through Retrieval), scored the way the other candidates are.</summary>
public sealed partial class ExperimentWorkflow
{
    /// <summary>The kNN baseline of a classification: the vote of the nearest labelled training examples.</summary>
    private async Task<List<ItemOutcome>> KnnVotesAsync(Experiment experiment, IReadOnlyList<LabeledExample> items, CancellationToken ct)
    {
        var outcomes = new List<ItemOutcome>(items.Count);
        foreach (var item in items)
        {
            var (label, seconds) = await retrieval.ClassifyAsync(experiment.Collection!, item.Input, Options.KnnNeighbors, ct);
            outcomes.Add(new ItemOutcome(ItemId(item), Matches(label, item.Expected), seconds, 0, label, Invalid: label is null));
        }
        Log(experiment, "retrieval", $"kNN baseline (k = {Options.KnnNeighbors}) classified {items.Count} test items: accuracy {outcomes.Count(o => o.Correct) / (double)Math.Max(1, items.Count):P1}.");
        return outcomes;
    }

    /// <summary>The kNN baseline of a generation: each test item answered with the reference of its nearest training example, scored as a run scores.</summary>
    private async Task<List<ItemOutcome>> NearestReferencesAsync(Experiment experiment, IReadOnlyList<LabeledExample> items, CancellationToken ct)
    {
        var curation = Curation(experiment);
        var primary = PrimaryMetric(experiment);
        var outcomes = new List<ItemOutcome>(items.Count);
        foreach (var item in items)
        {
            var (reference, seconds) = await retrieval.NearestReferenceAsync(experiment.Collection!, item.Input, ct);
            var scores = TaskScoring.ReferenceScoresOf(reference ?? "", item.Expected, curation);
            outcomes.Add(new ItemOutcome(ItemId(item), scores[primary] >= 0.999, seconds, 0, reference, reference is null ? "The collection holds no example near this input." : null)
            {
                Score = reference is null ? 0 : scores[primary],
                Scores = reference is null ? scores.ToDictionary(s => s.Key, _ => 0.0) : scores,
            });
        }
        Log(experiment, "retrieval", $"kNN baseline answered {items.Count} test items with the nearest training example's reference: mean {primary} {outcomes.Average(o => o.Score ?? 0):P1}.");
        return outcomes;
    }

    private static bool Matches(string? predicted, string expected) =>
        string.Equals(predicted?.Trim(), expected.Trim(), StringComparison.OrdinalIgnoreCase);
}

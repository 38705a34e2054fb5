using System.Text;
using AspireTune.Contracts.Datasets;
using AspireTune.Contracts.Evaluation;
using AspireTune.Evaluation.Datasets;

namespace AspireTune.Evaluation.Runs;

/// <summary>
/// The labels a <c>constrainToLabels</c> run's answers are constrained to (sent as <c>guided_choice</c>), and what
/// a run must be for the constraint to apply: answers scored as labels, every <c>expected</c> a string label,
/// choices the served <c>/v1</c> accepts, and endpoints that accept the parameter at all. The labels are the run's
/// label set (<c>labels</c>) when it names one, else those the dataset expects.
/// </summary>
public static class LabelChoices
{
    /// <summary>Most labels and longest label (UTF-8 bytes) that AspireTune's <c>/v1</c> takes in <c>guided_choice</c>.</summary>
    public const int MaxChoices = 1000, MaxChoiceBytes = 1000;

    /// <summary>Problems listed by line stop after this many.</summary>
    private const int LinesNamed = 5;

    /// <summary>Every distinct non-empty <c>expected</c> of the dataset, in ordinal order.</summary>
    public static List<string> From(IEnumerable<DatasetItem> items) =>
        items.Where(i => !string.IsNullOrEmpty(i.Expected)).Select(i => i.Expected!).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();

    /// <summary>
    /// Why a run's own label set (<c>labels</c>) cannot stand: it is for label scoring or the constraint only, holds
    /// each label once, and every labelled item's <c>expected</c> must be one of them. Empty when it stands.
    /// </summary>
    public static List<string> LabelSetProblems(IReadOnlyList<string> labels, IEnumerable<string> scorers, bool constrain, IReadOnlyList<DatasetItem> items)
    {
        var problems = new List<string>();
        if (!constrain && !scorers.Any(s => s.Trim().ToLowerInvariant() is "label" or "label-likelihood"))
            problems.Add("'labels' is the label set of label scoring: use it with the 'label' or 'label-likelihood' scorer, or with constrainToLabels.");
        if (labels.Count == 0 || labels.Any(l => l.Length == 0))
            problems.Add("'labels' lists the task's labels: at least one, none empty.");
        if (labels.Distinct(StringComparer.Ordinal).Count() != labels.Count)
            problems.Add("'labels' holds a label twice.");
        var known = labels.ToHashSet(StringComparer.Ordinal);
        var outside = items.Where(i => !string.IsNullOrEmpty(i.Expected) && !known.Contains(i.Expected!)).Select(i => i.Line).ToList();
        if (outside.Count > 0)
            problems.Add($"Every 'expected' must be one of 'labels'; {Lines(outside)} another.");
        return problems;
    }

    /// <summary>
    /// Why a run with these scorers, endpoints (id, kind), dataset and label set (null: the dataset's labels) cannot be
    /// constrained to its labels; empty when it can.
    /// </summary>
    public static List<string> Problems(IEnumerable<string> scorers, IEnumerable<(string Id, EndpointKind Kind)> endpoints, ReadOnlySpan<byte> dataset, IReadOnlyList<string>? labelSet = null)
    {
        var problems = new List<string>();
        if (!scorers.Any(s => s.Trim().Equals("label", StringComparison.OrdinalIgnoreCase)))
            problems.Add("constrainToLabels makes every answer one of the dataset's labels, which only a classification scored as labels can use: add the 'label' scorer.");
        foreach (var (id, kind) in endpoints.Where(e => e.Kind != EndpointKind.OpenAICompatible))
            problems.Add($"constrainToLabels sends 'guided_choice', which endpoint '{id}' (kind {kind}) refuses as an unknown parameter; constrain only OpenAICompatible endpoints that take it (AspireTune's own /v1, vLLM).");

        // The labels must be strings: a JSON value in 'expected' is a reference answer (a generation), not a label.
        var optional = LabelledJsonl.Read(dataset).Lines;
        var required = LabelledJsonl.Read(dataset, ExpectedLabel.RequiredString).Lines;
        var notStrings = optional.Zip(required).Where(p => p.First.Example?.Expected is not null && p.Second.Error is not null).Select(p => p.First.Line).ToList();
        if (notStrings.Count > 0)
            problems.Add($"constrainToLabels needs each 'expected' to be a label (a JSON string); {Lines(notStrings)} a JSON value instead.");

        if (labelSet is not null)
        {
            if (labelSet.Count > MaxChoices)
                problems.Add($"constrainToLabels allows at most {MaxChoices} distinct labels; 'labels' has {labelSet.Count}.");
            if (labelSet.Any(l => Encoding.UTF8.GetByteCount(l) > MaxChoiceBytes))
                problems.Add($"constrainToLabels allows labels of at most {MaxChoiceBytes} UTF-8 bytes; 'labels' holds a longer one.");
            return problems;
        }
        var labels = From(DatasetReader.Parse(dataset));
        if (labels.Count == 0 && notStrings.Count == 0)
            problems.Add("constrainToLabels needs labelled items: no line of the dataset has a non-empty 'expected'.");
        if (labels.Count > MaxChoices)
            problems.Add($"constrainToLabels allows at most {MaxChoices} distinct labels; the dataset has {labels.Count}.");
        var tooLong = optional.Where(l => l.Example?.Expected is { } e && Encoding.UTF8.GetByteCount(e) > MaxChoiceBytes).Select(l => l.Line).ToList();
        if (tooLong.Count > 0)
            problems.Add($"constrainToLabels allows labels of at most {MaxChoiceBytes} UTF-8 bytes; {Lines(tooLong)} a longer one.");
        return problems;
    }

    private static string Lines(List<int> lines) =>
        (lines.Count == 1 ? "line " : "lines ") + string.Join(", ", lines.Take(LinesNamed))
        + (lines.Count > LinesNamed ? $" and {lines.Count - LinesNamed} more" : "") + (lines.Count == 1 ? " has" : " have");
}

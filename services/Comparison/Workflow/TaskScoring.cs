using AspireTune.Analysis;
using AspireTune.Contracts.Comparison;
using AspireTune.Contracts.Evaluation;

namespace AspireTune.Comparison.Workflow;

/// <summary>
/// How an experiment's answers are scored, by task. Classification: the label scorer (primary) and label likelihood.
/// Generation: exact match, token F1, ROUGE-L, JSON field match when every reference is a JSON object, and the LLM
/// judge when a judge endpoint is configured; the primary metric is JSON field match for JSON references, else token F1.
/// </summary>
public static class TaskScoring
{
    /// <summary>Output tokens a classification answer gets: the longest label and a little more.</summary>
    public const int ClassificationMaxTokens = 8;

    public static string PrimaryMetric(ExperimentTask task, CurationReport curation) =>
        task == ExperimentTask.Classification ? "accuracy" : curation.ReferenceFields is not null ? "json_fields" : "token_f1";

    /// <summary>The per-item score the primary metric averages: <c>label</c> for classification, else the metric itself.</summary>
    public static string PrimaryItemScore(string primaryMetric) => primaryMetric == "accuracy" ? "label" : primaryMetric;

    public static IReadOnlyList<string> Scorers(ExperimentTask task, CurationReport curation, string? judgeEndpoint)
    {
        if (task == ExperimentTask.Classification)
            return ["label", "label-likelihood"];
        List<string> scorers = ["exact", "token-f1", "rouge-l"];
        if (curation.ReferenceFields is not null)
            scorers.Add("json-fields");
        if (!string.IsNullOrWhiteSpace(judgeEndpoint))
            scorers.Add("judge:" + judgeEndpoint);
        return scorers;
    }

    /// <summary>
    /// A generation answer that no model gave (the kNN baseline's) scored as a run's scorers score one: exact, token F1,
    /// ROUGE-L, and JSON fields when the references are JSON objects, by the same <see cref="ReferenceScores"/>. The
    /// judge takes no part: it is a model call, made only within an Evaluation run.
    /// </summary>
    public static Dictionary<string, double> ReferenceScoresOf(string answer, string reference, CurationReport curation)
    {
        var scores = new Dictionary<string, double>(StringComparer.Ordinal)
        {
            [ReferenceScores.Exact] = ReferenceScores.ExactMatch(answer, reference),
            [ReferenceScores.TokenF1] = ReferenceScores.TokenOverlapF1(answer, reference),
            [ReferenceScores.RougeL] = ReferenceScores.RougeLF1(answer, reference),
        };
        if (curation.ReferenceFields is not null)
            scores[ReferenceScores.JsonFields] = ReferenceScores.JsonFieldMatch(answer, reference) ?? 0;
        return scores;
    }

    /// <summary>
    /// Generation: room for the longest reference counted as one token per character (what a byte-level tokenizer
    /// needs; subword tokenizers need fewer) plus a quarter, within [16, <paramref name="ceiling"/>].
    /// </summary>
    public static int MaxTokens(ExperimentTask task, CurationReport curation, int ceiling) =>
        task == ExperimentTask.Classification ? ClassificationMaxTokens : Math.Clamp(curation.LongestReference * 5 / 4, 16, Math.Max(16, ceiling));

    /// <summary>The judge's rubric for a generation experiment: the instruction is what a good answer does.</summary>
    public static string? JudgeRubric(ExperimentTask task, string? instruction) =>
        task == ExperimentTask.Classification ? null
            : $"The answer does what was asked ({(string.IsNullOrWhiteSpace(instruction) ? PromptVariants.DefaultInstruction : instruction.Trim())}) and agrees with the expected answer; it adds nothing false.";

    /// <summary>The mean of the primary score in a prompt-engineering summary (classification: label accuracy).</summary>
    public static double SummaryScore(EvaluationSummary s, string primaryMetric) =>
        primaryMetric == "accuracy"
            ? s.Metrics.FirstOrDefault(m => m.Name is "label_accuracy" or "accuracy" or "label")?.Value ?? s.Metrics.FirstOrDefault()?.Value ?? 0
            : s.Metrics.FirstOrDefault(m => m.Name == primaryMetric)?.Value ?? 0;
}

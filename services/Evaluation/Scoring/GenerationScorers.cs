using AspireTune.Analysis;

namespace AspireTune.Evaluation.Scoring;

// Scorers for generation tasks with a reference answer; the scores themselves are ReferenceScores' (services/Analysis),
// shared with the Comparison's kNN baseline.

/// <summary>SQuAD-style token F1: the bag-of-words overlap of the normalized output and reference.</summary>
internal sealed class TokenF1Scorer : Scorer
{
    public override string Name => ReferenceScores.TokenF1;

    public override ValueTask ScoreAsync(ScoreInput input, ScoreResult result, CancellationToken ct)
    {
        result.Scores[Name] = ReferenceScores.TokenOverlapF1(input.Output, input.Expected!);
        return ValueTask.CompletedTask;
    }
}

/// <summary>ROUGE-L F1: the longest common subsequence of normalized words, as precision and recall against the reference.</summary>
internal sealed class RougeLScorer : Scorer
{
    public override string Name => ReferenceScores.RougeL;

    public override ValueTask ScoreAsync(ScoreInput input, ScoreResult result, CancellationToken ct)
    {
        result.Scores[Name] = ReferenceScores.RougeLF1(input.Output, input.Expected!, ct);
        return ValueTask.CompletedTask;
    }
}

/// <summary>
/// Extraction to JSON: the share of the reference object's fields whose values the output's JSON object repeats
/// (<see cref="ReferenceScores.JsonFieldMatch"/>). An expected answer that is not a JSON object is an error of the item.
/// </summary>
internal sealed class JsonFieldsScorer : Scorer
{
    public override string Name => ReferenceScores.JsonFields;

    public override ValueTask ScoreAsync(ScoreInput input, ScoreResult result, CancellationToken ct)
    {
        if (ReferenceScores.JsonFieldMatch(input.Output, input.Expected!) is { } score)
            result.Scores[Name] = score;
        else
            result.Errors.Add($"json_fields: expected '{NumericScorer.Truncate(input.Expected)}' is not a JSON object");
        return ValueTask.CompletedTask;
    }
}

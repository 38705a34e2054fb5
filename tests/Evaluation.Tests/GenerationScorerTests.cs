namespace AspireTune.Evaluation.Tests;

public class GenerationScorerTests
{
    private static async Task<AspireTune.Evaluation.Scoring.ScoreResult> Score(string spec, string output, string expected)
    {
        var scorer = AspireTune.Evaluation.Scoring.Scorer.Parse(spec);
        var result = new AspireTune.Evaluation.Scoring.ScoreResult();
        await scorer.ScoreAsync(new AspireTune.Evaluation.Scoring.ScoreInput("q", expected, output), result, CancellationToken.None);
        return result;
    }

    [Fact]
    public async Task TokenF1_PartialOverlap_IsHarmonicMeanOfPrecisionAndRecall()
    {
        // output words: the cat sat (3); reference: the cat sat on the mat (6); overlap 3: P = 1, R = 0.5, F1 = 2/3.
        (await Score("token-f1", "The cat, sat!", "the cat sat on the mat")).Scores["token_f1"].Should().BeApproximately(2.0 / 3, 1e-12);
        (await Score("token-f1", "dog", "the cat")).Scores["token_f1"].Should().Be(0);
        // Repeated words count once per occurrence in the reference: "the the the" against "the cat": overlap 1, P = 1/3, R = 1/2, F1 = 0.4.
        (await Score("token-f1", "the the the", "the cat")).Scores["token_f1"].Should().BeApproximately(0.4, 1e-12);
    }

    [Fact]
    public async Task RougeL_OrderMatters_LongestCommonSubsequence()
    {
        // LCS("police killed the gunman", "the gunman police killed") = "police killed" (2 of 4 each): P = R = F1 = 0.5.
        (await Score("rouge-l", "the gunman police killed", "police killed the gunman")).Scores["rouge_l"].Should().BeApproximately(0.5, 1e-12);
        // Same words in order: 1.
        (await Score("rouge-l", "Police killed the gunman.", "police killed the gunman")).Scores["rouge_l"].Should().Be(1);
    }

    [Fact]
    public async Task RougeL_VeryLongTexts_AreCutAndAnsweredQuickly()
    {
        var huge = string.Join(' ', Enumerable.Range(0, 200_000).Select(i => "w" + (i % 997)));
        var result = await Score("rouge-l", huge, huge);
        result.Scores["rouge_l"].Should().Be(1);
    }

    [Fact]
    public async Task JsonFields_SomeFieldsRight_ScoresTheirShare()
    {
        const string expected = """{"sender":"Alice Smith","amount":12.5,"meta":{"urgent":true,"tags":["a","b"]}}""";
        // sender matches normalized, amount as number, urgent wrong, tags right: 3 of 4 leaves.
        var result = await Score("json-fields", "```json\n{\"sender\":\"alice smith.\",\"amount\":12.50,\"meta\":{\"urgent\":false,\"tags\":[\"a\",\"b\"]}}\n```", expected);
        result.Scores["json_fields"].Should().BeApproximately(0.75, 1e-12);
        (await Score("json-fields", "not json", expected)).Scores["json_fields"].Should().Be(0);
        var bad = await Score("json-fields", "{}", "plain text");
        bad.Scores.Should().NotContainKey("json_fields");
        bad.Errors.Should().ContainSingle().Which.Should().Contain("not a JSON object");
    }
}

using System.Text.Json;
using AspireTune.Evaluation.Scoring;

namespace AspireTune.Evaluation.Tests;

/// <summary>The <c>assert</c> scorer: each item's own promptfoo-style checks, from its metadata.</summary>
public sealed class AssertionScorerTests
{
    private static async Task<ScoreResult> ScoreAsync(string output, string assertions, double latencyS = 0.1, double cost = 0.001,
        JudgeCall? judge = null, EmbedCall? embed = null, string spec = "assert:judge=j")
    {
        var metadata = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>($$"""{"assert": {{assertions}}}""");
        var result = new ScoreResult();
        await Scorer.Parse(spec, judge, null, embed).ScoreAsync(new ScoreInput("q", null, output) { Metadata = metadata, LatencyS = latencyS, CostUsd = cost }, result, CancellationToken.None);
        return result;
    }

    [Theory]
    [InlineData("Paris", """[{"type": "equals", "value": "Paris"}]""", true)]
    [InlineData("Paris ", """[{"type": "equals", "value": "Paris"}]""", false)]
    [InlineData("""{"a": [1, 2]}""", """[{"type": "equals", "value": {"a": [1, 2]}}]""", true)]
    [InlineData("It is Paris.", """[{"type": "contains", "value": "paris"}]""", false)]
    [InlineData("It is Paris.", """[{"type": "icontains", "value": "paris"}]""", true)]
    [InlineData("It is Paris.", """[{"type": "not-contains", "value": "London"}]""", true)]
    [InlineData("four or 4", """[{"type": "contains-all", "value": ["four", "4"]}]""", true)]
    [InlineData("FOUR", """[{"type": "icontains-any", "value": "five, four"}]""", true)]
    [InlineData("Shakespeare wrote it", """[{"type": "starts-with", "value": "Shakespeare"}]""", true)]
    [InlineData("v2.1", """[{"type": "regex", "value": "^v\\d+\\.\\d+$"}]""", true)]
    [InlineData("```json\n{\"ok\": true}\n```", """[{"type": "is-json"}]""", true)]
    [InlineData("Here you go: {\"ok\": true} hope it helps", """[{"type": "is-json"}]""", false)]
    [InlineData("Here you go: {\"ok\": true} hope it helps", """[{"type": "contains-json", "value": {"type": "object", "required": ["ok"]}}]""", true)]
    [InlineData("Here you go: {\"no\": true}", """[{"type": "contains-json", "value": {"type": "object", "required": ["ok"]}}]""", false)]
    [InlineData("fast", """[{"type": "latency", "threshold": 50}]""", false)]
    [InlineData("cheap", """[{"type": "cost", "threshold": 0.01}]""", true)]
    public async Task Score_EachType_PassesAsPromptfooDefinesIt(string output, string assertions, bool pass)
    {
        var result = await ScoreAsync(output, assertions);

        result.Errors.Should().BeEmpty();
        result.Scores["assert"].Should().Be(pass ? 1 : 0);
    }

    [Fact]
    public async Task Score_SeveralTypes_AllMustPassAndEachTypeIsScored()
    {
        var result = await ScoreAsync("Paris", """[{"type": "contains", "value": "Par"}, {"type": "starts-with", "value": "London"}]""");

        result.Scores.Should().Contain(new KeyValuePair<string, double>("assert", 0)).And.Contain(new KeyValuePair<string, double>("assert.contains", 1))
            .And.Contain(new KeyValuePair<string, double>("assert.starts-with", 0));
    }

    [Fact]
    public async Task Score_LlmRubricAndSimilar_UseTheJudgeAndEmbeddingEndpoints()
    {
        var asked = new List<string>();
        JudgeCall judge = (endpoint, _, user, _) => { asked.Add(endpoint); return Task.FromResult(user.Contains("Rubric: names Paris") ? "7" : "1"); };
        EmbedCall embed = (endpoint, texts, _) => { asked.Add(endpoint); return Task.FromResult<IReadOnlyList<float[]>>(texts.Select(t => t.StartsWith("Paris") ? new[] { 1f, 0f } : new[] { 0.6f, 0.8f }).ToList()); };

        var result = await ScoreAsync("Paris!", """[{"type": "llm-rubric", "value": "names Paris"}, {"type": "similar", "value": ["Lyon", "Paris"], "threshold": 0.9}]""",
            judge: judge, embed: embed, spec: "assert:judge=grader,embedding=embedder");

        result.Scores["assert"].Should().Be(1);
        result.Scores["rubric"].Should().Be(0.7);
        result.Scores["similarity"].Should().BeApproximately(1, 1e-6);
        asked.Should().Equal("grader", "embedder");
    }

    [Fact]
    public async Task Score_RubricWithoutJudge_RecordsTheProblemAndFails()
    {
        var result = await ScoreAsync("x", """[{"type": "llm-rubric", "value": "anything"}]""", spec: "assert");

        result.Scores["assert"].Should().Be(0);
        result.Errors.Should().ContainSingle().Which.Should().Contain("needs a judge endpoint");
    }

    [Fact]
    public void Parse_UnknownSetting_Refused()
    {
        var act = () => Scorer.Parse("assert:grader=x");

        act.Should().Throw<ArgumentException>().WithMessage("*unknown setting 'grader'*");
        AssertionScorer.Refuse("javascript").Should().Contain("not supported");
        AssertionScorer.Refuse("not-similar").Should().BeNull();
    }
}

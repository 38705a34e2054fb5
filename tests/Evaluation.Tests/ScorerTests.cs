using AspireTune.Evaluation.Scoring;

namespace AspireTune.Evaluation.Tests;

public class ScorerTests
{
    private static async Task<ScoreResult> Score(string spec, string output, string? expected = null, string input = "q")
    {
        var scorer = Scorer.Parse(spec);
        var result = new ScoreResult();
        await scorer.ScoreAsync(new ScoreInput(input, expected, output), result, CancellationToken.None);
        return result;
    }

    [Fact]
    public async Task Exact_SameTextAroundWhitespace_ScoresOneElseZero()
    {
        (await Score("exact", " Paris\n", "Paris")).Scores["exact"].Should().Be(1);
        (await Score("exact", "paris", "Paris")).Scores["exact"].Should().Be(0);
    }

    [Fact]
    public async Task Normalized_CaseAndPunctuationDiffer_ScoresOne()
    {
        (await Score("normalized", "The  answer: PARIS!", "the answer paris")).Scores["normalized"].Should().Be(1);
        (await Score("normalized", "Lyon", "Paris")).Scores["normalized"].Should().Be(0);
    }

    [Fact]
    public async Task Label_OutputNamesOneKnownLabel_PredictsIt()
    {
        var scorer = (LabelScorer)Scorer.Parse("label");
        scorer.SetLabels(["spam", "ham"]);
        var result = new ScoreResult();
        await scorer.ScoreAsync(new ScoreInput("q", "Spam", "I think this is spam."), result, CancellationToken.None);
        result.Predicted.Should().Be("spam");
        result.Scores["label"].Should().Be(1);

        scorer.Predict("spam or ham, hard to say").Should().Be(LabelScorer.Other);
        scorer.Predict("no idea").Should().Be(LabelScorer.Other);
        scorer.Predict("HAM").Should().Be("ham");
    }

    [Fact]
    public async Task Contains_WithAndWithoutArgument_ChecksExpectedOrText()
    {
        (await Score("contains", "The capital is Paris.", "paris")).Scores["contains"].Should().Be(1);
        (await Score("contains", "The capital is Lyon.", "paris")).Scores["contains"].Should().Be(0);
        (await Score("contains:capital", "The capital is Lyon.")).Scores["contains"].Should().Be(1);
        Scorer.Parse("contains:x").NeedsExpected.Should().BeFalse();
    }

    [Fact]
    public async Task Regex_Pattern_MatchesOutput()
    {
        (await Score("regex:^(yes|no)$", "yes")).Scores["regex"].Should().Be(1);
        (await Score("regex:^(yes|no)$", "maybe")).Scores["regex"].Should().Be(0);
    }

    [Fact]
    public void Regex_InvalidPattern_ThrowsWithPatternInMessage()
    {
        var act = () => Scorer.Parse("regex:([a-");
        act.Should().Throw<ArgumentException>().WithMessage("*([a-*not a valid*");
    }

    [Fact]
    public async Task Json_ValidFencedOrInvalid_ScoresAccordingly()
    {
        (await Score("json", "{\"a\": 1}")).Scores["json"].Should().Be(1);
        (await Score("json", "```json\n{\"a\": 1}\n```")).Scores["json"].Should().Be(1);
        (await Score("json", "{a: 1")).Scores["json"].Should().Be(0);
    }

    [Fact]
    public async Task JsonSchema_OutputMatchesOrViolatesSchema_ScoresAccordingly()
    {
        const string schema = """json-schema:{"type":"object","required":["rating"],"properties":{"rating":{"type":"integer","minimum":1,"maximum":10}}}""";
        (await Score(schema, "{\"rating\": 7}")).Scores["json_schema"].Should().Be(1);
        (await Score(schema, "{\"rating\": 11}")).Scores["json_schema"].Should().Be(0);
        (await Score(schema, "{\"score\": 7}")).Scores["json_schema"].Should().Be(0);
        (await Score(schema, "not json")).Scores["json_schema"].Should().Be(0);
    }

    [Fact]
    public void JsonSchema_SchemaNotJson_Throws()
    {
        var act = () => Scorer.Parse("json-schema:{oops");
        act.Should().Throw<ArgumentException>().WithMessage("*JSON Schema*");
    }

    [Fact]
    public async Task Numeric_WithinToleranceOrNot_ScoresAndReportsAbsoluteError()
    {
        var near = await Score("numeric:1", "I'd rate it 7 out of 10", "8");
        near.Scores["numeric"].Should().Be(1);
        near.Scores["numeric_abs_error"].Should().Be(1);
        var far = await Score("numeric", "7", "8");
        far.Scores["numeric"].Should().Be(0);
        (await Score("numeric", "no number", "8")).Scores["numeric"].Should().Be(0);
        (await Score("numeric", "7", "eight")).Errors.Should().ContainSingle().Which.Should().Contain("not a number");
    }

    [Fact]
    public void Parse_UnknownScorer_ListsKnownOnes()
    {
        var act = () => Scorer.Parse("bleu");
        act.Should().Throw<ArgumentException>().WithMessage("*Unknown scorer 'bleu'*exact*judge*");
    }

    [Fact]
    public void Parse_JudgeWithoutEndpoint_Throws()
    {
        var act = () => Scorer.Parse("judge");
        act.Should().Throw<ArgumentException>().WithMessage("*judge:ENDPOINT*");
        Scorer.Parse("judge:grader").JudgeEndpoint.Should().Be("grader");
    }
}

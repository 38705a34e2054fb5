using System.Text;
using AspireTune.Comparison.Curation;

namespace AspireTune.Comparison.Tests;

public sealed class CurationTests
{
    private static string Line(string input, string expected) => $"{{\"input\":\"{input}\",\"expected\":\"{expected}\"}}";

    private static string Dataset(int perLabel)
    {
        var sb = new StringBuilder();
        for (var i = 0; i < perLabel; i++)
        {
            sb.AppendLine(Line($"cheap pills number {i} buy now limited offer {i * 7} click here", "spam"));
            sb.AppendLine(Line($"meeting notes {i}: the build of module {i * 3} passed, see you at standup", "ham"));
        }
        return sb.ToString();
    }

    [Fact]
    public void Parse_MalformedLines_ReportsEachLineNumber()
    {
        var jsonl = string.Join('\n', Line("ok", "a"), "{not json", "{\"input\":\"\",\"expected\":\"a\"}", "{\"input\":\"x\"}", "[1,2]", Line("fine", "b"));

        var (examples, errors, count) = DatasetReader.Parse(jsonl);

        examples.Select(e => e.Line).Should().Equal(1, 6);
        count.Should().Be(4);
        errors.Select(e => e.Line).Should().Equal(2, 3, 4, 5);
        errors[0].Message.Should().StartWith("not valid JSON");
        errors[1].Message.Should().Contain("'input'");
        errors[2].Message.Should().Contain("'expected'");
    }

    [Fact]
    public void Curate_ExactAndNearDuplicates_AreRemovedAndCounted()
    {
        var text = "hello team the quarterly report is attached please review the numbers before friday thanks";
        var jsonl = string.Join('\n',
            Line(text, "ham"),
            Line(text.ToUpperInvariant(), "ham"),                      // exact after normalisation
            Line(text.Replace("friday", "monday"), "ham"),             // near: one word of sixteen changed
            Line("completely different text about winning a free cruise today", "spam"),
            Line("same input two labels", "ham"),
            Line("same input two labels", "spam"));

        var (_, report) = Curator.Curate(jsonl, testFraction: 0, validationFraction: 0, seed: 1, nearDuplicateThreshold: 0.7);

        report.Received.Should().Be(6);
        report.ExactDuplicatesRemoved.Should().Be(1);
        report.NearDuplicatesRemoved.Should().Be(1);
        report.ConflictingLabelsRemoved.Should().Be(2);
        report.Kept.Should().Be(2);
    }

    [Fact]
    public void Curate_Split_IsStratifiedDisjointAndReproducible()
    {
        var (splits, report) = Curator.Curate(Dataset(50), testFraction: 0.2, validationFraction: 0.125, seed: 7);
        var (again, _) = Curator.Curate(Dataset(50), testFraction: 0.2, validationFraction: 0.125, seed: 7);

        report.Test.Should().Be(20);
        splits.Test.Count(e => e.Expected == "spam").Should().Be(10);
        splits.Validation.Should().HaveCount(10);
        splits.Train.Should().HaveCount(70);
        splits.Train.Select(e => e.Line).Intersect(splits.Test.Select(e => e.Line)).Should().BeEmpty();
        again.Test.Select(e => e.Line).Should().Equal(splits.Test.Select(e => e.Line));
        report.CrossSplitNearDuplicates.Should().Be(0);
    }

    [Fact]
    public void Curate_ImbalancedLabels_Warns()
    {
        var sb = new StringBuilder();
        for (var i = 0; i < 40; i++)
            sb.AppendLine(Line($"ordinary message {i} about lunch plans and the weekly sync number {i * 11}", "ham"));
        for (var i = 0; i < 4; i++)
            sb.AppendLine(Line($"win money {i} now {i * 13} guaranteed casino bonus", "spam"));

        var (_, report) = Curator.Curate(sb.ToString(), 0.25, 0.1, 3);

        report.ImbalanceRatio.Should().Be(10);
        report.Warnings.Should().Contain(w => w.Contains("imbalanced")).And.Contain(w => w.Contains("fewer than 5"));
    }
}

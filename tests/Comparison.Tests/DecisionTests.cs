using AspireTune.Analysis;
using AspireTune.Comparison.Analysis;
using AspireTune.Comparison.Reports;
using AspireTune.Contracts.Comparison;

namespace AspireTune.Comparison.Tests;

/// <summary>The decision past accuracy: non-inferiority, total cost of ownership, invalid answers, confusion matrices.</summary>
public sealed class DecisionTests
{
    private static CandidateResults Candidate(string name, CandidateKind kind, int correct, double cost, double trainingHours = 0) =>
        new(name, kind, Enumerable.Range(0, 100).Select(i => new ItemOutcome($"item-{i}", i < correct, 0.1, cost, i < correct ? "spam" : "ham")).ToList(), trainingHours);

    private static readonly Dictionary<string, string> Spam = Enumerable.Range(0, 100).ToDictionary(i => $"item-{i}", _ => "spam");

    private static readonly DecisionSettings Prices = new()
    {
        NonInferiorityMargin = 0.05, GpuHourPrice = 3, SelfServedHourPrice = 0.5, KnnHourPrice = 0.05, HorizonDays = 30,
    };

    [Fact]
    public void Compare_WithMarginAndPrices_GivesVerdictsCostsAndBreakEvenWorkedByHand()
    {
        var result = Comparer.Compare(
            [Candidate("hosted", CandidateKind.Prompted, 90, 0.002), Candidate("fine-tuned", CandidateKind.FineTuned, 89, 0, trainingHours: 2), Candidate("knn", CandidateKind.Knn, 60, 0)],
            Spam, Prices);

        // fine-tuned vs hosted: one item of 100 lost; mean -0.01, SE sqrt(0.99 / 99 / 100) = 0.01, bound -0.01 - 1.6449 * 0.01.
        var ft = result.NonInferiority.Single(v => v.Candidate == "fine-tuned");
        ft.Reference.Should().Be("hosted");
        ft.Difference.Should().BeApproximately(-0.01, 1e-12);
        ft.LowerBound.Should().BeApproximately(-0.01 - 1.6448536 * 0.01, 1e-6);
        ft.NonInferior.Should().BeTrue();
        result.NonInferiority.Single(v => v.Candidate == "knn").NonInferior.Should().BeFalse();

        // Costs a day: hosted 0.002 a request; fine-tuned 2 GPU-hours * 3 USD / 30 days + 0.5 * 24; knn 0.05 * 24.
        result.Costs.Single(c => c.Candidate == "fine-tuned").Should().Be(new CandidateCost("fine-tuned", 6, 12, 0));
        result.Costs.Single(c => c.Candidate == "knn").FixedPerDay.Should().BeApproximately(1.2, 1e-12);
        // Cheapest: hosted until 1.2 / 0.002 = 600 requests a day, then knn; fine-tuned never.
        result.CheapestByVolume.Select(r => r.Candidate).Should().Equal("hosted", "knn");
        result.CheapestByVolume[0].ToRequestsPerDay.Should().BeApproximately(600, 1e-9);
        result.CheapestByVolume[1].ToRequestsPerDay.Should().BeNull();
        // Among those worth choosing (hosted, and fine-tuned within the margin): hosted until 12.2 / 0.002 = 6,100.
        result.CheapestAcceptableByVolume.Select(r => r.Candidate).Should().Equal("hosted", "fine-tuned");
        result.CheapestAcceptableByVolume[1].FromRequestsPerDay.Should().BeApproximately(6100, 1e-9);
        result.Decision.Should().Contain("fine-tuned is within the margin").And.Contain("knn is not shown to be within it")
            .And.Contain("hosted is cheapest from 0 to 600 requests a day").And.Contain("fine-tuned is cheapest from 6,100 requests a day up")
            .And.Contain("Never the cheapest: fine-tuned");

        var json = ReportWriter.ToJson("x", EmptyCuration(), result);
        json.Should().Contain("\"cheapestAcceptableByVolume\"").And.Contain("\"nonInferiority\"").And.Contain("\"lowerBound\"");
        var html = ReportWriter.ToHtml("x", EmptyCuration(), result, DateTimeOffset.UnixEpoch);
        html.Should().Contain("Daily cost against volume").And.Contain("non-inferior").And.Contain("<td>600 up</td>");
    }

    [Fact]
    public void Compare_AnswersNamingNoLabel_AreCountedInvalidApartFromWrongLabels()
    {
        var expected = new Dictionary<string, string> { ["a"] = "fiction", ["b"] = "fiction", ["c"] = "news", ["d"] = "news" };
        var model = new CandidateResults("fine-tuned", CandidateKind.FineTuned,
        [
            new ItemOutcome("a", true, 0.1, 0, "fiction"),
            new ItemOutcome("b", false, 0.1, 0, "fion", Invalid: true),
            new ItemOutcome("c", false, 0.1, 0, "fiction"),
            new ItemOutcome("d", false, double.NaN, 0, null, Error: "timeout"),
        ]);
        var knn = new CandidateResults("knn", CandidateKind.Knn, expected.Select(e => new ItemOutcome(e.Key, true, 0.01, 0, e.Value)).ToList());

        var result = Comparer.Compare([model, knn], expected);

        var summary = result.Candidates.Single(c => c.Name == "fine-tuned");
        (summary.Invalid, summary.Errors).Should().Be((1, 1));
        var m = result.Confusion.Single(c => c.Candidate == "fine-tuned");
        m.Columns.Should().Equal("fiction", "news", "(invalid)", "(error)");
        m.Counts[0].Should().Equal(1, 0, 1, 0); // fiction: one right, one near-miss
        m.Counts[1].Should().Equal(1, 0, 0, 1); // news: one answered fiction, one error
        result.Decision.Should().Contain("Invalid answers (naming no label; counted as wrong): fine-tuned 1 of 4");
        ReportWriter.ToHtml("x", EmptyCuration(), result, DateTimeOffset.UnixEpoch).Should().Contain("(invalid)").And.Contain("1 (25%)");
    }

    [Fact]
    public void FormatP_SmallValues_AreWrittenAsBelowOneThousandth()
    {
        Comparer.FormatP(0.0004).Should().Be("< 0.001");
        Comparer.FormatP(0.0421).Should().Be("0.042");
        Comparer.FormatP(1).Should().Be("1.000");
    }

    private static CurationReport EmptyCuration() => AspireTune.Comparison.Curation.Curator.Curate("{\"input\":\"a b c\",\"expected\":\"spam\"}", 0, 0, 1).Report;
}

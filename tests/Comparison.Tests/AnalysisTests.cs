using AspireTune.Analysis;
using AspireTune.Comparison.Analysis;
using AspireTune.Comparison.Reports;
using AspireTune.Contracts.Comparison;

namespace AspireTune.Comparison.Tests;

public sealed class AnalysisTests
{
    [Fact]
    public void McNemar_KnownDiscordantCounts_GivesExactBinomialP()
    {
        // 10 items only A got right, 2 only B: p = 2 * P(X <= 2 | n = 12, 1/2) = 2 * 79 / 4096.
        var a = Enumerable.Repeat(true, 10).Concat(Enumerable.Repeat(false, 2)).Concat(Enumerable.Repeat(true, 5)).ToList();
        var b = Enumerable.Repeat(false, 10).Concat(Enumerable.Repeat(true, 2)).Concat(Enumerable.Repeat(true, 5)).ToList();

        var (aOnly, bOnly, p) = Statistics.McNemar(a, b);

        (aOnly, bOnly).Should().Be((10, 2));
        p.Should().BeApproximately(2 * 79 / 4096.0, 1e-12);
    }

    [Fact]
    public void Percentile_MatchesLinearInterpolation()
    {
        double[] values = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        Statistics.PercentileOfSorted(values, 50).Should().BeApproximately(5.5, 1e-12);
        Statistics.PercentileOfSorted(values, 95).Should().BeApproximately(9.55, 1e-12);
    }

    [Fact]
    public void BootstrapMean_IntervalContainsMeanAndNarrowsWithMoreData()
    {
        var small = Enumerable.Range(0, 40).Select(i => i % 4 == 0 ? 0.0 : 1.0).ToList();
        var large = Enumerable.Range(0, 4000).Select(i => i % 4 == 0 ? 0.0 : 1.0).ToList();

        var smallMean = Statistics.Mean("x", small, 2000, 17);
        var largeMean = Statistics.Mean("x", large, 2000, 17);

        smallMean.Lower.Should().BeLessThan(0.75);
        smallMean.Upper.Should().BeGreaterThan(0.75);
        (largeMean.Upper - largeMean.Lower)!.Value.Should().BeLessThan((smallMean.Upper!.Value - smallMean.Lower!.Value) / 5);
    }

    private static CandidateResults Candidate(string name, int correct, int total, double latency, double cost) =>
        new(name, CandidateKind.Prompted, Enumerable.Range(0, total).Select(i => new ItemOutcome($"item-{i}", i < correct, latency, cost, i < correct ? "spam" : "ham")).ToList());

    private static Dictionary<string, string> Expected(int total) => Enumerable.Range(0, total).ToDictionary(i => $"item-{i}", _ => "spam");

    [Fact]
    public void Compare_CheaperCandidateNotSignificantlyWorse_Wins()
    {
        var result = Comparer.Compare(
            [Candidate("hosted-gpt", 90, 100, 0.8, 0.002), Candidate("fine-tuned", 88, 100, 0.05, 0.00001), Candidate("knn", 60, 100, 0.01, 0)],
            Expected(100));

        result.Winner.Should().Be("fine-tuned");
        result.Pairwise.Single(p => p.B == "knn").Significant.Should().BeTrue();
        result.Pairwise.Single(p => p.B == "fine-tuned").Significant.Should().BeFalse();
        result.Candidates.Where(c => c.OnParetoFront).Select(c => c.Name).Should().BeEquivalentTo(["hosted-gpt", "fine-tuned", "knn"]);
        result.Decision.Should().Contain("not significant");
    }

    [Fact]
    public void Compare_ClearlyBetterCandidate_WinsDespiteCost()
    {
        var result = Comparer.Compare([Candidate("hosted-gpt", 95, 100, 0.8, 0.002), Candidate("knn", 55, 100, 0.01, 0)], Expected(100));

        result.Winner.Should().Be("hosted-gpt");
        result.Decision.Should().Contain("significantly more accurate than knn");
    }

    [Fact]
    public void ParetoFront_ExcludesDominatedCandidate()
    {
        var result = Comparer.Compare([Candidate("a", 90, 100, 0.1, 0.001), Candidate("b", 80, 100, 0.2, 0.002)], Expected(100));
        result.Candidates.Single(c => c.Name == "b").OnParetoFront.Should().BeFalse();
        result.Candidates.Single(c => c.Name == "a").OnParetoFront.Should().BeTrue();
    }

    [Fact]
    public void Report_ContainsChartsAndEscapesNames()
    {
        var result = Comparer.Compare([Candidate("<script>x</script>", 9, 10, 0.1, 0.001), Candidate("knn", 5, 10, 0.01, 0)], Expected(10));
        var curation = Curation.Curator.Curate("{\"input\":\"a b c\",\"expected\":\"spam\"}", 0, 0, 1).Report;

        var html = ReportWriter.ToHtml("demo & test", curation, result, DateTimeOffset.UnixEpoch);

        html.Should().Contain("<svg").And.Contain("Pareto").And.Contain("&lt;script&gt;").And.NotContain("<script>x");
        html.Split("<svg").Length.Should().Be(6); // accuracy, cost and latency scatters, latency bars, cost of ownership
        ReportWriter.ToJson("demo", curation, result).Should().Contain("\"winner\"");
    }
}

using AspireTune.Analysis;

namespace AspireTune.Comparison.Tests;

public sealed class DecisionMathTests
{
    [Fact]
    public void NonInferiority_PairedCorrectness_MatchesTheBoundWorkedByHand()
    {
        // 100 items: candidate alone right on 10, reference alone right on 5, both right on 70, both wrong on 15.
        var candidate = new List<double>();
        var reference = new List<double>();
        void Add(int count, double c, double r) { for (var i = 0; i < count; i++) { candidate.Add(c); reference.Add(r); } }
        Add(10, 1, 0); Add(5, 0, 1); Add(70, 1, 1); Add(15, 0, 0);

        var result = NonInferiority.Test(candidate, reference, margin: 0.02);

        // d = (10 - 5) / 100 = 0.05; sum of squared deviations = 10 (0.95)^2 + 5 (1.05)^2 + 85 (0.05)^2 = 14.75;
        // SE = sqrt(14.75 / 99 / 100) = 0.0385993; z(0.95) = 1.6448536; bound = 0.05 - 0.0634899 = -0.0134899.
        result.Difference.Should().BeApproximately(0.05, 1e-12);
        result.StandardError.Should().BeApproximately(0.0385993, 1e-6);
        result.LowerBound.Should().BeApproximately(-0.0134899, 1e-6);
        result.NonInferior.Should().BeTrue("-0.0135 lies above the margin -0.02");
        NonInferiority.Test(candidate, reference, margin: 0.01).NonInferior.Should().BeFalse("-0.0135 lies below -0.01");
    }

    [Fact]
    public void NormalQuantile_KnownPoints_MatchTables()
    {
        NonInferiority.NormalQuantile(0.95).Should().BeApproximately(1.6448536270, 1e-8);
        NonInferiority.NormalQuantile(0.975).Should().BeApproximately(1.9599639845, 1e-8);
        NonInferiority.NormalQuantile(0.5).Should().BeApproximately(0, 1e-12);
        NonInferiority.NormalQuantile(0.001).Should().BeApproximately(-3.0902323062, 1e-8);
    }

    [Fact]
    public void BreakEven_HostedAgainstSelfServed_IsFixedCostOverPerRequestCost()
    {
        // Hosted: 0.002 USD a request. Self-served: trained once for 6 USD (spread over 30 days: 0.2 a day), hosted at 0.5 USD an hour (12 a day).
        var hosted = new CandidateCost("hosted", OneOff: 0, FixedPerDay: 0, PerRequest: 0.002);
        var selfServed = new CandidateCost("fine-tuned", OneOff: 6, FixedPerDay: 12, PerRequest: 0);

        CostOfOwnership.BreakEven(hosted, selfServed, horizonDays: 30).Should().BeApproximately(12.2 / 0.002, 1e-6); // 6,100 a day
        CostOfOwnership.BreakEven(hosted, hosted with { Candidate = "same" }, 30).Should().BeNull();
        CostOfOwnership.BreakEven(selfServed, selfServed with { FixedPerDay = 20, PerRequest = 0.001 }, 30).Should().BeNull("the second costs more at every volume");

        var ranges = CostOfOwnership.CheapestByVolume([selfServed, hosted], horizonDays: 30);
        ShouldBe(ranges, ("hosted", 0, 6100), ("fine-tuned", 6100, null));
    }

    [Fact]
    public void CheapestByVolume_ThreeCandidates_FollowsTheLowerEnvelope()
    {
        // kNN: 1 a day, 0.0001 a request; small hosted: 0.0005 a request; fine-tuned: 10 a day.
        var knn = new CandidateCost("knn", 0, 1, 0.0001);
        var hosted = new CandidateCost("hosted", 0, 0, 0.0005);
        var tuned = new CandidateCost("fine-tuned", 0, 10, 0);

        var ranges = CostOfOwnership.CheapestByVolume([knn, hosted, tuned], horizonDays: 365);

        // hosted = knn at 1 / 0.0004 = 2,500; knn = fine-tuned at 9 / 0.0001 = 90,000.
        ShouldBe(ranges, ("hosted", 0, 2500), ("knn", 2500, 90000), ("fine-tuned", 90000, null));
    }

    private static void ShouldBe(IReadOnlyList<CheapestRange> ranges, params (string Candidate, double From, double? To)[] expected)
    {
        ranges.Select(r => r.Candidate).Should().Equal(expected.Select(e => e.Candidate));
        for (var i = 0; i < expected.Length; i++)
        {
            ranges[i].FromRequestsPerDay.Should().BeApproximately(expected[i].From, 1e-6);
            if (expected[i].To is { } to)
                ranges[i].ToRequestsPerDay.Should().BeApproximately(to, 1e-6);
            else
                ranges[i].ToRequestsPerDay.Should().BeNull();
        }
    }
}

using AspireTune.Analysis;
using AspireTune.Evaluation.Scoring;

namespace AspireTune.Evaluation.Tests;

public class StatisticsTests
{
    [Fact]
    public void Mean_HalfOfFourHundredCorrect_IntervalIsAboutPlusMinusFivePoints()
    {
        var values = Enumerable.Range(0, 400).Select(i => i % 2 == 0 ? 1.0 : 0.0).ToList();
        var metric = Statistics.Mean("accuracy", values, 2000, seed: 7);
        metric.Value.Should().Be(0.5);
        // Normal approximation: 1.96 * sqrt(0.25 / 400) = 0.049.
        metric.Lower.Should().BeInRange(0.43, 0.47);
        metric.Upper.Should().BeInRange(0.53, 0.57);
    }

    [Fact]
    public void Mean_SameSeed_SameInterval()
    {
        var values = Enumerable.Range(0, 50).Select(i => (double)(i % 7)).ToList();
        Statistics.Mean("m", values, 500, 3).Should().Be(Statistics.Mean("m", values, 500, 3));
    }

    [Fact]
    public void Mean_SingleValue_HasNoInterval()
    {
        var metric = Statistics.Mean("m", [0.8], 500, 1);
        metric.Value.Should().Be(0.8);
        metric.Lower.Should().BeNull();
        metric.Upper.Should().BeNull();
    }

    [Fact]
    public void Percentile_LinearInterpolation_MatchesHandComputed()
    {
        Statistics.PercentileOfSorted([1, 2, 3, 4], 50).Should().Be(2.5);
        Statistics.PercentileOfSorted([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 95).Should().BeApproximately(10.5, 1e-9);
        var metric = Statistics.Percentile("p95", Enumerable.Range(1, 100).Select(i => (double)i).ToList(), 95, 500, 1);
        metric.Value.Should().BeApproximately(95.05, 1e-9);
        metric.Lower.Should().BeLessThanOrEqualTo(metric.Value);
        metric.Upper.Should().BeGreaterThanOrEqualTo(metric.Value);
    }

    [Fact]
    public void MacroF1_KnownConfusion_MatchesHandComputed()
    {
        // spam: TP 3, FN 1, FP 1 -> F1 6/8 = 0.75; ham: TP 2, FN 1, FP 1 -> F1 4/6.
        (string, string)[] pairs = [("spam", "spam"), ("spam", "spam"), ("spam", "spam"), ("spam", "ham"), ("ham", "ham"), ("ham", "ham"), ("ham", "spam")];
        Statistics.MacroF1(i => pairs[i], pairs.Length).Should().BeApproximately((0.75 + 4.0 / 6) / 2, 1e-12);
    }

    [Fact]
    public void MacroF1_OtherPredictions_CountAsMisses()
    {
        (string, string)[] pairs = [("a", "a"), ("a", "(other)"), ("b", "b")];
        // a: TP 1, FN 1 -> 2/3; b: 1.
        Statistics.MacroF1(i => pairs[i], pairs.Length).Should().BeApproximately((2.0 / 3 + 1) / 2, 1e-12);
    }
}

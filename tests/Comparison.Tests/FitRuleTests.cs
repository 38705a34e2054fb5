using AspireTune.Analysis;

namespace AspireTune.Comparison.Tests;

/// <summary>The fit rule the training applies and the reports state (<see cref="FitRule"/>): its words and its thresholds.</summary>
public sealed class FitRuleTests
{
    private static FitRule.Verdict Verdict(params (int Step, double Train, double Valid)[] evals) =>
        FitRule.Assess(evals.Select(e => new FitRule.Evaluation(e.Step, e.Train, e.Valid)).ToList(), minDelta: 0).Verdict;

    [Fact]
    public void Text_TodaysThresholds_IsTheSentenceReportsHaveCarried()
    {
        FitRule.Text.Should().Be(
            "Read from the validation evaluations: overfitting when the last validation loss lies above the lowest by more than " +
            "max(min_delta, 2% of the lowest) while the training loss kept falling past the best step; underfitting when neither " +
            "the validation loss (first to lowest) nor the training loss (first to last) fell by 5% or more; otherwise a good fit; " +
            "inconclusive with fewer than three evaluations.");
    }

    [Fact]
    public void Assess_LastValidationJustOverOrUnderTheStatedRise_OverfittingOnlyOver()
    {
        const double lowest = 2.0;
        var over = lowest * (1 + FitRule.RiseShare) + 1e-6;
        var under = lowest * (1 + FitRule.RiseShare) - 1e-6;

        Verdict((1, 3.0, 3.0), (2, 2.0, lowest), (3, 1.5, over)).Should().Be(FitRule.Verdict.Overfitting);
        Verdict((1, 3.0, 3.0), (2, 2.0, lowest), (3, 1.5, under)).Should().Be(FitRule.Verdict.GoodFit);
        // The training loss must have kept falling past the best step: a validation rise alone is not overfitting.
        Verdict((1, 3.0, 3.0), (2, 2.0, lowest), (3, 2.1, over)).Should().Be(FitRule.Verdict.GoodFit);
    }

    [Fact]
    public void Assess_LossesFallingJustUnderOrOverTheStatedGain_UnderfittingOnlyUnder()
    {
        var under = 1 - FitRule.MinGain + 1e-6;
        var over = 1 - FitRule.MinGain - 1e-6;

        Verdict((1, 1.0, 1.0), (2, 0.99, 0.99), (3, under, under)).Should().Be(FitRule.Verdict.Underfitting);
        Verdict((1, 1.0, 1.0), (2, 0.99, 0.99), (3, under, over)).Should().Be(FitRule.Verdict.GoodFit, "the validation loss fell enough");
        Verdict((1, 1.0, 1.0), (2, 0.99, 0.99), (3, over, under)).Should().Be(FitRule.Verdict.GoodFit, "the training loss fell enough");
    }

    [Fact]
    public void Assess_OneFewerThanTheStatedEvaluations_Inconclusive()
    {
        var evals = Enumerable.Range(1, FitRule.MinEvaluations).Select(i => (i, 3.0 / i, 3.0 / i)).ToArray();

        Verdict(evals[..^1]).Should().Be(FitRule.Verdict.Inconclusive);
        Verdict(evals).Should().Be(FitRule.Verdict.GoodFit);
    }
}

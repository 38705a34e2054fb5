using AspireTune.Analysis;

namespace AspireTune.Engine.Training;

/// <summary>
/// Reads over- and underfitting from the validation and training curves by the one rule, <see cref="FitRule"/>
/// (shared with the reports, which state it as <see cref="Rule"/>).
/// </summary>
public static class FitAnalysis
{
    /// <summary>The rule <see cref="Assess"/> applies, in words.</summary>
    public static string Rule => FitRule.Text;

    public static (FitVerdict Verdict, string Advice) Assess(IReadOnlyList<EvaluationResult> evals, double minDelta)
    {
        var (verdict, advice) = FitRule.Assess(evals.Select(e => new FitRule.Evaluation(e.Step, e.TrainLoss, e.ValidationLoss)).ToList(), minDelta);
        return (verdict switch
        {
            FitRule.Verdict.GoodFit => FitVerdict.GoodFit,
            FitRule.Verdict.Overfitting => FitVerdict.Overfitting,
            FitRule.Verdict.Underfitting => FitVerdict.Underfitting,
            _ => FitVerdict.Inconclusive,
        }, advice);
    }
}

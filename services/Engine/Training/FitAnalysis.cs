using System.Globalization;

namespace AspireTune.Engine.Training;

/// <summary>Reads over- and underfitting from the validation and training curves.</summary>
public static class FitAnalysis
{
    public static (FitVerdict Verdict, string Advice) Assess(IReadOnlyList<EvaluationResult> evals, double minDelta)
    {
        if (evals.Count < 3)
            return (FitVerdict.Inconclusive, "Fewer than three evaluations: evaluate more often (eval_every_steps) to judge the fit.");
        var first = evals[0];
        var best = evals.MinBy(e => e.ValidationLoss)!;
        var last = evals[^1];
        var tolerance = Math.Max(minDelta, 0.02 * Math.Abs(best.ValidationLoss));
        string F(double v) => v.ToString("0.####", CultureInfo.InvariantCulture);

        if (best.Step < last.Step && last.ValidationLoss - best.ValidationLoss > tolerance && last.TrainLoss < best.TrainLoss)
            return (FitVerdict.Overfitting,
                $"Overfitting: validation loss rose from {F(best.ValidationLoss)} (step {best.Step}) to {F(last.ValidationLoss)} " +
                $"(step {last.Step}) while training loss fell from {F(best.TrainLoss)} to {F(last.TrainLoss)}. The best step is kept; " +
                "add training data, raise dropout or weight decay, train fewer epochs or lower the learning rate.");

        var valGain = (first.ValidationLoss - best.ValidationLoss) / Math.Max(1e-9, Math.Abs(first.ValidationLoss));
        var trainGain = (first.TrainLoss - last.TrainLoss) / Math.Max(1e-9, Math.Abs(first.TrainLoss));
        if (valGain < 0.05 && trainGain < 0.05)
            return (FitVerdict.Underfitting,
                $"Underfitting: training loss ({F(first.TrainLoss)} to {F(last.TrainLoss)}) and validation loss " +
                $"({F(first.ValidationLoss)} to {F(best.ValidationLoss)}) barely moved. Raise the learning rate, train longer, " +
                "lower regularisation, use a larger model or LoRA rank, and check that the completions follow from the prompts.");

        return (FitVerdict.GoodFit,
            $"Good fit: validation loss fell from {F(first.ValidationLoss)} to {F(best.ValidationLoss)} (best at step {best.Step}) " +
            "and did not turn upwards.");
    }
}

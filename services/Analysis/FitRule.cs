using System.Globalization;

namespace AspireTune.Analysis;

/// <summary>
/// How a training run's fit is read from its evaluations (over- or underfitting), in code and in words: the engine's
/// training applies <see cref="Assess"/> and reports state <see cref="Text"/>, so the words cannot drift from the rule.
/// Shared here because the reports (Comparison) must not reference the engine.
/// </summary>
public static class FitRule
{
    /// <summary>Evaluations needed before a verdict; fewer is inconclusive.</summary>
    public const int MinEvaluations = 3;

    /// <summary>How far the last validation loss may lie above the lowest, as a share of the lowest (or min_delta if larger), before it is overfitting.</summary>
    public const double RiseShare = 0.02;

    /// <summary>The relative fall of the validation loss (first to lowest) or the training loss (first to last) below which both count as not moving.</summary>
    public const double MinGain = 0.05;

    public enum Verdict { GoodFit, Overfitting, Underfitting, Inconclusive }

    /// <summary>One evaluation of a run: its step, the training loss then and the validation loss.</summary>
    public readonly record struct Evaluation(int Step, double TrainLoss, double ValidationLoss);

    /// <summary>The rule in words, for reports.</summary>
    public static string Text { get; } = string.Create(CultureInfo.InvariantCulture,
        $"Read from the validation evaluations: overfitting when the last validation loss lies above the lowest by more than " +
        $"max(min_delta, {RiseShare:0%} of the lowest) while the training loss kept falling past the best step; underfitting when neither " +
        $"the validation loss (first to lowest) nor the training loss (first to last) fell by {MinGain:0%} or more; otherwise a good fit; " +
        $"inconclusive with fewer than {Word(MinEvaluations)} evaluations.");

    /// <summary>The verdict on a run's evaluations (in step order) and advice for people, with the losses it rests on.</summary>
    public static (Verdict Verdict, string Advice) Assess(IReadOnlyList<Evaluation> evals, double minDelta)
    {
        if (evals.Count < MinEvaluations)
            return (Verdict.Inconclusive, $"Fewer than {Word(MinEvaluations)} evaluations: evaluate more often (eval_every_steps) to judge the fit.");
        var first = evals[0];
        var best = evals.MinBy(e => e.ValidationLoss);
        var last = evals[^1];
        var tolerance = Math.Max(minDelta, RiseShare * Math.Abs(best.ValidationLoss));
        static string F(double v) => v.ToString("0.####", CultureInfo.InvariantCulture);

        if (best.Step < last.Step && last.ValidationLoss - best.ValidationLoss > tolerance && last.TrainLoss < best.TrainLoss)
            return (Verdict.Overfitting,
                $"Overfitting: validation loss rose from {F(best.ValidationLoss)} (step {best.Step}) to {F(last.ValidationLoss)} " +
                $"(step {last.Step}) while training loss fell from {F(best.TrainLoss)} to {F(last.TrainLoss)}. The best step is kept; " +
                "add training data, raise dropout or weight decay, train fewer epochs or lower the learning rate.");

        var valGain = (first.ValidationLoss - best.ValidationLoss) / Math.Max(1e-9, Math.Abs(first.ValidationLoss));
        var trainGain = (first.TrainLoss - last.TrainLoss) / Math.Max(1e-9, Math.Abs(first.TrainLoss));
        if (valGain < MinGain && trainGain < MinGain)
            return (Verdict.Underfitting,
                $"Underfitting: training loss ({F(first.TrainLoss)} to {F(last.TrainLoss)}) and validation loss " +
                $"({F(first.ValidationLoss)} to {F(best.ValidationLoss)}) barely moved. Raise the learning rate, train longer, " +
                "lower regularisation, use a larger model or LoRA rank, and check that the completions follow from the prompts.");

        return (Verdict.GoodFit,
            $"Good fit: validation loss fell from {F(first.ValidationLoss)} to {F(best.ValidationLoss)} (best at step {best.Step}) " +
            "and did not turn upwards.");
    }

    private static string Word(int n) => n switch { 2 => "two", 3 => "three", 4 => "four", 5 => "five", _ => n.ToString(CultureInfo.InvariantCulture) };
}

using System.Globalization;
using AspireTune.Analysis;
using AspireTune.Contracts.Comparison;
using AspireTune.Contracts.FineTuning;

namespace AspireTune.Comparison.Analysis;

/// <summary>
/// The fine-tuned candidate's training as the decision reports it: curves, the fit verdict (the training job's, read from
/// <c>TrainingCompleted</c>), and the rule behind it as the engine applies it (<see cref="FitRule"/>).
/// </summary>
public static class TrainingFits
{
    public static TrainingFit From(string candidate, TrainingCompleted message) => new()
    {
        Candidate = candidate,
        Verdict = message.FitVerdict,
        Advice = message.FitAdvice,
        Rule = FitRule.Text,
        BestStep = message.BestStep,
        Curve = message.Curve,
    };

    /// <summary>The decision's sentence about the fit, with the losses it rests on.</summary>
    public static string Describe(TrainingFit fit)
    {
        var c = CultureInfo.InvariantCulture;
        var validation = fit.Curve.Where(p => p.ValidLoss is not null).ToList();
        var losses = validation.Count == 0 ? "no validation loss was recorded"
            : string.Create(c, $"validation loss {validation[0].ValidLoss:0.###} at step {validation[0].Step}, lowest {validation.Min(p => p.ValidLoss):0.###}, last {validation[^1].ValidLoss:0.###} at step {validation[^1].Step}");
        return string.Create(c, $" Training of {fit.Candidate}: {Name(fit.Verdict)} ({losses}; best step {fit.BestStep}).");
    }

    /// <summary>The verdict in words: <c>good_fit</c> is "good fit".</summary>
    public static string Name(string? verdict) => verdict switch
    {
        null => "no fit verdict",
        "good_fit" => "good fit",
        _ => verdict.Replace('_', ' '),
    };
}

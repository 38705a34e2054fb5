namespace AspireTune.Engine.Training;

internal static class Schedules
{
    /// <summary>Learning rate for optimizer step <paramref name="step"/> (1-based) of <paramref name="total"/>.</summary>
    public static double LearningRate(LearningRateSchedule schedule, double peak, int step, int warmup, int total)
    {
        if (warmup > 0 && step <= warmup) return peak * step / warmup;
        var span = Math.Max(1, total - warmup);
        var progress = Math.Clamp((double)(step - warmup) / span, 0, 1);
        return schedule switch
        {
            LearningRateSchedule.Linear => peak * (1 - progress),
            LearningRateSchedule.Cosine => peak * 0.5 * (1 + Math.Cos(Math.PI * progress)),
            _ => peak,
        };
    }
}

namespace AspireTune.Contracts.Common;

/// <summary>A point estimate with its 95% confidence interval (bootstrap unless stated).</summary>
public sealed record MetricValue
{
    /// <summary>Metric name, e.g. <c>accuracy</c>, <c>macro_f1</c>, <c>latency_p95_s</c>.</summary>
    public required string Name { get; init; }

    /// <summary>The point estimate.</summary>
    public required double Value { get; init; }

    /// <summary>Lower bound of the 95% interval, when one was computed.</summary>
    public double? Lower { get; init; }

    /// <summary>Upper bound of the 95% interval, when one was computed.</summary>
    public double? Upper { get; init; }
}

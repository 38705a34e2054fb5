using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace AspireTune.Comparison;

/// <summary>The service's one ActivitySource and one Meter, both named <c>AspireTune.Comparison</c>.</summary>
public static class ComparisonTelemetry
{
    public const string Name = "AspireTune.Comparison";
    public static readonly ActivitySource ActivitySource = new(Name);
    public static readonly Meter Meter = new(Name);

    public static readonly Counter<long> ExperimentsStarted = Meter.CreateCounter<long>("aspiretune.experiments.started", "{experiment}", "Experiments accepted.");
    public static readonly Counter<long> ExperimentsCompleted = Meter.CreateCounter<long>("aspiretune.experiments.completed", "{experiment}", "Experiments finished, by status.");
}

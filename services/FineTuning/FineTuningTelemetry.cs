using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace AspireTune.FineTuning;

/// <summary>The service's one ActivitySource and one Meter, both named <c>AspireTune.FineTuning</c>.</summary>
public static class FineTuningTelemetry
{
    public const string Name = "AspireTune.FineTuning";
    public static readonly ActivitySource ActivitySource = new(Name);
    public static readonly Meter Meter = new(Name);
}

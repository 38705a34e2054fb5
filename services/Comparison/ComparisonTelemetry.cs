using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace AspireTune.Comparison;

/// <summary>The service's one ActivitySource and one Meter, both named <c>AspireTune.Comparison</c>.</summary>
public static class ComparisonTelemetry
{
    public const string Name = "AspireTune.Comparison";
    public static readonly ActivitySource ActivitySource = new(Name);
    public static readonly Meter Meter = new(Name);
}

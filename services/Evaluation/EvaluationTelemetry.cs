using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace AspireTune.Evaluation;

/// <summary>The service's one ActivitySource and one Meter, both named <c>AspireTune.Evaluation</c>.</summary>
public static class EvaluationTelemetry
{
    public const string Name = "AspireTune.Evaluation";
    public static readonly ActivitySource ActivitySource = new(Name);
    public static readonly Meter Meter = new(Name);
}

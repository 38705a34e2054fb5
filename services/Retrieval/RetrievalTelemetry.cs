using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace AspireTune.Retrieval;

/// <summary>The service's one ActivitySource and one Meter, both named <c>AspireTune.Retrieval</c>.</summary>
public static class RetrievalTelemetry
{
    public const string Name = "AspireTune.Retrieval";
    public static readonly ActivitySource ActivitySource = new(Name);
    public static readonly Meter Meter = new(Name);
}

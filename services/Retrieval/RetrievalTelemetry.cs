using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace AspireTune.Retrieval;

/// <summary>The service's one ActivitySource and one Meter, both named <c>AspireTune.Retrieval</c>.</summary>
public static class RetrievalTelemetry
{
    public const string Name = "AspireTune.Retrieval";
    public static readonly ActivitySource ActivitySource = new(Name);
    public static readonly Meter Meter = new(Name);

    /// <summary>Time to answer a neighbour query (embedding included), in seconds; tagged by mode and index kind.</summary>
    public static readonly Histogram<double> QueryDuration =
        Meter.CreateHistogram<double>("aspiretune.retrieval.query.duration", "s", "Time to answer a neighbour query, embedding included.");

    /// <summary>Time to embed one request's texts, in seconds.</summary>
    public static readonly Histogram<double> EmbeddingDuration =
        Meter.CreateHistogram<double>("aspiretune.retrieval.embedding.duration", "s", "Time to embed one request's texts.");

    public static readonly Counter<long> TextsEmbedded =
        Meter.CreateCounter<long>("aspiretune.retrieval.embedding.texts", "{text}", "Texts embedded.");

    public static readonly Counter<long> PointsIndexed =
        Meter.CreateCounter<long>("aspiretune.retrieval.points.indexed", "{point}", "Points written to the vector index.");
}

using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace AspireTune.Evaluation;

/// <summary>The service's one ActivitySource and one Meter, both named <c>AspireTune.Evaluation</c>.</summary>
public static class EvaluationTelemetry
{
    public const string Name = "AspireTune.Evaluation";
    public static readonly ActivitySource ActivitySource = new(Name);
    public static readonly Meter Meter = new(Name);

    /// <summary>Model call latency in seconds (cache hits excluded), tagged by endpoint.</summary>
    public static readonly Histogram<double> Latency = Meter.CreateHistogram<double>("aspiretune.eval.latency", "s", "Latency of one model call.");

    /// <summary>Model calls by endpoint and outcome (<c>ok</c>, <c>cached</c>, <c>error</c>).</summary>
    public static readonly Counter<long> Calls = Meter.CreateCounter<long>("aspiretune.eval.calls", "{call}", "Model calls made by evaluation runs.");

    /// <summary>Tokens by endpoint and direction (<c>input</c>, <c>output</c>).</summary>
    public static readonly Counter<long> Tokens = Meter.CreateCounter<long>("aspiretune.eval.tokens", "{token}", "Tokens sent and received.");

    /// <summary>Money spent on model calls, in US dollars (cache hits cost nothing).</summary>
    public static readonly Counter<double> Cost = Meter.CreateCounter<double>("aspiretune.eval.cost", "USD", "Cost of model calls.");

    /// <summary>Runs executing now.</summary>
    public static readonly UpDownCounter<int> ActiveRuns = Meter.CreateUpDownCounter<int>("aspiretune.eval.runs.active", "{run}", "Evaluation runs executing.");

    /// <summary>Runs finished, by final status.</summary>
    public static readonly Counter<long> RunsFinished = Meter.CreateCounter<long>("aspiretune.eval.runs.finished", "{run}", "Evaluation runs finished.");
}

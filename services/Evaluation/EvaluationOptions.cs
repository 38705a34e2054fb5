using System.ComponentModel.DataAnnotations;

namespace AspireTune.Evaluation;

/// <summary>Evaluation service settings (section <c>Evaluation</c>).</summary>
public sealed class EvaluationOptions
{
    public const string SectionName = "Evaluation";

    /// <summary>Base URL of the Retrieval service, resolved by service discovery. Default <c>http://retrieval</c>.</summary>
    [Required, Url]
    public string RetrievalBaseUrl { get; set; } = "http://retrieval";

    /// <summary>
    /// Seconds a worker holds a run it executes before another replica may take it over; renewed every third of
    /// it. Default 60.
    /// </summary>
    [Range(5, 3600)]
    public int LeaseSeconds { get; set; } = 60;

    /// <summary>How often an idle worker looks for queued runs and runs whose lease lapsed, in milliseconds. Default 2000.</summary>
    [Range(50, 600_000)]
    public int PollIntervalMs { get; set; } = 2000;

    /// <summary>Runs executed at the same time; further runs wait in the queue. Default 2.</summary>
    [Range(1, 64)]
    public int MaxConcurrentRuns { get; set; } = 2;

    /// <summary>Bootstrap resamples for the 95% confidence intervals. Default 1000.</summary>
    [Range(100, 100_000)]
    public int BootstrapResamples { get; set; } = 1000;

    /// <summary>Largest dataset accepted by the API, in bytes. Default 268435456 (256 MiB).</summary>
    [Range(1024, long.MaxValue)]
    public long MaxDatasetBytes { get; set; } = 256L * 1024 * 1024;

    /// <summary>Item results written to the database per transaction. Default 256.</summary>
    [Range(1, 10_000)]
    public int ResultBatchSize { get; set; } = 256;

    /// <summary>Longest wait, in milliseconds, before queued item results are written together. Default 200.</summary>
    [Range(0, 10_000)]
    public int ResultFlushMilliseconds { get; set; } = 200;

    /// <summary>Whether identical calls (endpoint, prompt, parameters) are answered from the response cache. Default true.</summary>
    public bool ResponseCache { get; set; } = true;
}

/// <summary>
/// Resilience of calls to model endpoints (section <c>Evaluation:ModelHttp</c>): hosted models answer in
/// seconds to minutes, so these are minute-scale, unlike the 10 s attempt timeout of the standard handler.
/// </summary>
public sealed class ModelHttpOptions
{
    public const string SectionName = "Evaluation:ModelHttp";

    /// <summary>Timeout of one attempt, in seconds. Default 120.</summary>
    [Range(0.05, 3600)]
    public double AttemptTimeoutSeconds { get; set; } = 120;

    /// <summary>Timeout of a call including all retries and waits, in seconds. Default 600.</summary>
    [Range(0.1, 36_000)]
    public double TotalTimeoutSeconds { get; set; } = 600;

    /// <summary>Retries after the first attempt on 408, 429, 5xx and network errors. Default 6.</summary>
    [Range(0, 50)]
    public int MaxRetries { get; set; } = 6;

    /// <summary>First back-off delay in seconds (exponential with jitter) when no Retry-After is sent. Default 1.</summary>
    [Range(0.001, 600)]
    public double RetryBaseDelaySeconds { get; set; } = 1;

    /// <summary>Longest wait between attempts in seconds, Retry-After included. Default 60.</summary>
    [Range(0.01, 3600)]
    public double RetryMaxDelaySeconds { get; set; } = 60;

    /// <summary>Failure ratio (0-1) over <see cref="CircuitSamplingSeconds"/> that opens the circuit of an endpoint host. Default 0.5.</summary>
    [Range(0.01, 1)]
    public double CircuitFailureRatio { get; set; } = 0.5;

    /// <summary>Window over which the failure ratio is measured, in seconds. Default 60.</summary>
    [Range(0.5, 3600)]
    public double CircuitSamplingSeconds { get; set; } = 60;

    /// <summary>Calls needed in the window before the circuit may open. Default 20.</summary>
    [Range(2, 100_000)]
    public int CircuitMinimumThroughput { get; set; } = 20;

    /// <summary>How long an open circuit rejects calls, in seconds. Default 30.</summary>
    [Range(0.5, 3600)]
    public double CircuitBreakSeconds { get; set; } = 30;
}

using AspireTune.Contracts.Common;

namespace AspireTune.Contracts.Evaluation;

/// <summary>Command: evaluate prompt versions x model endpoints on a dataset.</summary>
public sealed record RunEvaluation
{
    /// <summary>Run id; the correlation id of the run's events.</summary>
    public required Guid RunId { get; init; }

    /// <summary>The experiment this run belongs to, when started by the workflow.</summary>
    public Guid? ExperimentId { get; init; }

    /// <summary>Prompt versions as <c>name@version</c> or <c>name:label</c>.</summary>
    public required IReadOnlyList<string> Prompts { get; init; }

    /// <summary>Model endpoint ids.</summary>
    public required IReadOnlyList<string> ModelEndpoints { get; init; }

    /// <summary>Dataset (JSONL: <c>input</c>, <c>expected</c>, optional <c>metadata</c>).</summary>
    public required ArtifactRef Dataset { get; init; }

    /// <summary>Scorers to apply, e.g. <c>exact</c>, <c>label</c>, <c>regex:^yes</c>.</summary>
    public IReadOnlyList<string> Scorers { get; init; } = ["exact"];

    /// <summary>Repeats per item, for consistency (agreement across repeats).</summary>
    public int Repeats { get; init; } = 1;

    /// <summary>Retrieval collection to fill examples/context from, when the prompt uses them.</summary>
    public string? RetrievalCollection { get; init; }

    /// <summary>Number of examples or passages to retrieve per item.</summary>
    public int RetrievalTopK { get; init; } = 4;

    /// <summary>Sampling temperature sent to every model (0 to 2); the endpoint's default when null.</summary>
    public double? Temperature { get; init; }

    /// <summary>Most output tokens per call; the endpoint's default when null.</summary>
    public int? MaxTokens { get; init; }

    /// <summary>
    /// Rubric for the <c>judge:&lt;endpoint&gt;</c> scorer: what a good answer is. The judge sees the rubric, the
    /// input, the expected output and the answer, and returns a 1-10 score (reported as score / 10).
    /// </summary>
    public string? JudgeRubric { get; init; }

    /// <summary>
    /// Classification: the model may answer only with one of the dataset's labels (sent as <c>guided_choice</c>, the
    /// constraint AspireTune's own <c>/v1</c> enforces while decoding). Only for endpoints that accept it; hosted APIs
    /// refuse the parameter. Default false. Refused (the run fails to start, <c>EvaluationFailed</c>) unless the scorers
    /// include <c>label</c>, every endpoint is <c>OpenAICompatible</c> and every <c>expected</c> is a string label.
    /// </summary>
    public bool ConstrainToLabels { get; init; }

    /// <summary>
    /// Classification: the task's label set, which the <c>label</c> scorer maps answers to, <c>label-likelihood</c>
    /// scores and <see cref="ConstrainToLabels"/> allows; every <c>expected</c> of the dataset must be one of them. Null
    /// (default): the labels the dataset itself expects, which a test split may lack some of.
    /// </summary>
    public IReadOnlyList<string>? Labels { get; init; }
}

/// <summary>Event: an evaluation run finished (possibly with per-item errors, counted in the summary).</summary>
public sealed record EvaluationCompleted
{
    /// <summary>Run id (correlation id).</summary>
    public required Guid RunId { get; init; }

    /// <summary>The experiment, when the run belongs to one.</summary>
    public Guid? ExperimentId { get; init; }

    /// <summary>One summary per prompt version x model endpoint.</summary>
    public required IReadOnlyList<EvaluationSummary> Summaries { get; init; }

    /// <summary>Per-item results (JSONL) in the artifact store.</summary>
    public required ArtifactRef Results { get; init; }

    /// <summary>When the run finished (UTC).</summary>
    public required DateTimeOffset CompletedAt { get; init; }
}

/// <summary>Aggregates for one prompt version on one model endpoint.</summary>
public sealed record EvaluationSummary
{
    /// <summary>Prompt as <c>name@version</c>.</summary>
    public required string Prompt { get; init; }

    /// <summary>Model endpoint id.</summary>
    public required string ModelEndpoint { get; init; }

    /// <summary>Items scored.</summary>
    public required int Items { get; init; }

    /// <summary>Items that failed (endpoint errors, timeouts).</summary>
    public required int Errors { get; init; }

    /// <summary>Scores, latency percentiles (s), tokens, cost (USD), consistency, each with its 95% interval.</summary>
    public required IReadOnlyList<MetricValue> Metrics { get; init; }

    /// <summary>Confusion matrix of the <c>label</c> scorer (expected x predicted counts); empty without it.</summary>
    public IReadOnlyList<ConfusionCell> ConfusionMatrix { get; init; } = [];
}

/// <summary>One cell of a confusion matrix: how many items with this expected label got this predicted label.</summary>
public sealed record ConfusionCell
{
    /// <summary>The expected (true) label, normalized (lower case, trimmed).</summary>
    public required string Expected { get; init; }

    /// <summary>The label read from the model's output, normalized; <c>(other)</c> when it named no known label.</summary>
    public required string Predicted { get; init; }

    /// <summary>Number of item results in this cell (repeats count separately).</summary>
    public required int Count { get; init; }
}

/// <summary>Event: an evaluation run could not complete at all.</summary>
public sealed record EvaluationFailed
{
    /// <summary>Run id (correlation id).</summary>
    public required Guid RunId { get; init; }

    /// <summary>The experiment, when the run belongs to one.</summary>
    public Guid? ExperimentId { get; init; }

    /// <summary>What went wrong (never contains secrets).</summary>
    public required string Reason { get; init; }

    /// <summary>When it failed (UTC).</summary>
    public required DateTimeOffset FailedAt { get; init; }
}

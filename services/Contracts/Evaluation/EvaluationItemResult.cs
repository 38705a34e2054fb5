using System.Text.Json;
using AspireTune.Contracts.Common;

namespace AspireTune.Contracts.Evaluation;

/// <summary>
/// One line of a run's per-item results (the artifact <see cref="EvaluationCompleted.Results"/> points to, and
/// <c>GET /api/evaluation/runs/{id}/results</c>): one call, i.e. one prompt x endpoint x item x repeat.
/// Read and written only through <see cref="EvaluationResultsJsonl"/>.
/// </summary>
public sealed record EvaluationItemResult
{
    /// <summary>Prompt version as <c>name@version</c>.</summary>
    public required string Prompt { get; init; }

    /// <summary>Model endpoint id.</summary>
    public required string ModelEndpoint { get; init; }

    /// <summary>0-based index of the item among the dataset's non-blank lines.</summary>
    public required int Item { get; init; }

    /// <summary>1-based line of the item in the dataset.</summary>
    public required int Line { get; init; }

    /// <summary>0-based repeat; repeats above 0 measure consistency.</summary>
    public required int Repeat { get; init; }

    /// <summary>The item's input; null when the line was not a valid item.</summary>
    public string? Input { get; init; }

    /// <summary>The item's expected answer, when it has one.</summary>
    public string? Expected { get; init; }

    /// <summary>The model's raw answer; null when the call failed.</summary>
    public string? Output { get; init; }

    /// <summary>The label the answer was read as (label scorer), when there is one.</summary>
    public string? Predicted { get; init; }

    /// <summary>Scores by scorer name (<c>label</c>, <c>exact</c>, ...), each in [0, 1]; null when the call failed.</summary>
    public IReadOnlyDictionary<string, double>? Scores { get; init; }

    /// <summary>Latency of the call in seconds (0 for a cached answer's lookup).</summary>
    public required double LatencyS { get; init; }

    /// <summary>Prompt tokens.</summary>
    public int InputTokens { get; init; }

    /// <summary>Completion tokens.</summary>
    public int OutputTokens { get; init; }

    /// <summary>Cost of the call in USD.</summary>
    public double CostUsd { get; init; }

    /// <summary>True when the answer came from the response cache.</summary>
    public bool Cached { get; init; }

    /// <summary>Why the call produced no answer; null when it did.</summary>
    public string? Error { get; init; }

    /// <summary>Scorers that could not score the answer, and why.</summary>
    public string? ScoreErrors { get; init; }

    /// <summary>Retrieved examples the prompt held after it was fitted to the model's context; null when it asks for none.</summary>
    public int? ExamplesShown { get; init; }

    /// <summary>Examples retrieval offered for the prompt; null when it asks for none.</summary>
    public int? ExamplesRetrieved { get; init; }

    /// <summary>True when the input itself had to be cut to fit the model's context.</summary>
    public bool InputTruncated { get; init; }

    /// <summary>The <see cref="Predicted"/> value of an answer that names no label: an invalid answer.</summary>
    public const string NoLabel = "(other)";
}

/// <summary>The one reader and writer of per-item evaluation results (JSONL, one <see cref="EvaluationItemResult"/> a line).</summary>
public static class EvaluationResultsJsonl
{
    /// <summary>Appends one result as a line (with its newline).</summary>
    public static void WriteLine(Stream stream, EvaluationItemResult result)
    {
        JsonSerializer.Serialize(stream, result, ContractJson.Options);
        stream.WriteByte((byte)'\n');
    }

    /// <summary>Appends one result as a line (with its newline).</summary>
    public static async Task WriteLineAsync(Stream stream, EvaluationItemResult result, CancellationToken ct)
    {
        await JsonSerializer.SerializeAsync(stream, result, ContractJson.Options, ct);
        await stream.WriteAsync("\n"u8.ToArray(), ct);
    }

    /// <summary>Reads every non-blank line; a line that is not a result throws a <see cref="FormatException"/> naming the line.</summary>
    public static List<EvaluationItemResult> Read(ReadOnlySpan<byte> content)
    {
        var results = new List<EvaluationItemResult>();
        var reader = new JsonlLines(content);
        while (reader.TryNext(out var number, out var raw))
        {
            try
            {
                results.Add(JsonSerializer.Deserialize<EvaluationItemResult>(raw, ContractJson.Options)
                    ?? throw new FormatException($"Evaluation results line {number}: null is not a result."));
            }
            catch (JsonException e)
            {
                throw new FormatException($"Evaluation results line {number}: {e.Message}", e);
            }
        }
        return results;
    }
}

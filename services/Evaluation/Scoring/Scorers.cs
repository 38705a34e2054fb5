using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using AspireTune.Analysis;
using AspireTune.Evaluation.Endpoints;
using NJsonSchema;

namespace AspireTune.Evaluation.Scoring;

/// <summary>What a scorer sees of one call.</summary>
public sealed record ScoreInput(string Input, string? Expected, string Output)
{
    /// <summary>The item's metadata, when it has some.</summary>
    public IReadOnlyDictionary<string, JsonElement>? Metadata { get; init; }

    /// <summary>The label the model finds most likely after the prompt (label-likelihood runs on endpoints that can score).</summary>
    public string? LikelyLabel { get; init; }

    /// <summary>Latency of the call in seconds.</summary>
    public double LatencyS { get; init; }

    /// <summary>Cost of the call in USD.</summary>
    public double CostUsd { get; init; }
}

/// <summary>The scores of one call (0-1 each, plus auxiliary values such as absolute error) and scorer notes.</summary>
public sealed class ScoreResult
{
    public Dictionary<string, double> Scores { get; } = new(StringComparer.Ordinal);
    public string? Predicted { get; set; }
    public List<string> Errors { get; } = [];
}

/// <summary>Asks a judge model for a 1-10 score; provided by the run executor.</summary>
public delegate Task<string> JudgeCall(string endpointId, string system, string user, CancellationToken ct);

/// <summary>
/// One scorer, from its spec string: <c>exact</c>, <c>normalized</c>, <c>label</c>, <c>contains</c>,
/// <c>contains:TEXT</c>, <c>regex:PATTERN</c>, <c>json</c>, <c>json-schema:SCHEMA</c>, <c>numeric</c>,
/// <c>numeric:TOLERANCE</c>, <c>judge:ENDPOINT</c>, <c>assert[:judge=ENDPOINT,embedding=ENDPOINT]</c>.
/// </summary>
public abstract class Scorer
{
    /// <summary>The metric name in results and summaries (e.g. <c>exact</c>, <c>label</c>).</summary>
    public abstract string Name { get; }

    /// <summary>Whether it compares with the item's <c>expected</c> (items without one are not scored).</summary>
    public virtual bool NeedsExpected => true;

    /// <summary>The judge endpoint id for <c>judge:</c>, else null.</summary>
    public virtual string? JudgeEndpoint => null;

    /// <summary>Every model endpoint the scorer calls (judge, embeddings).</summary>
    public virtual IEnumerable<string> Endpoints => JudgeEndpoint is { } judge ? [judge] : [];

    public abstract ValueTask ScoreAsync(ScoreInput input, ScoreResult result, CancellationToken ct);

    /// <summary>Parses a spec; throws <see cref="ArgumentException"/> with a message fit for the user.</summary>
    public static Scorer Parse(string spec, JudgeCall? judge = null, string? rubric = null, EmbedCall? embed = null)
    {
        var (kind, argument) = spec.IndexOf(':') is var colon and > 0 ? (spec[..colon].Trim().ToLowerInvariant(), spec[(colon + 1)..]) : (spec.Trim().ToLowerInvariant(), null);
        return kind switch
        {
            "exact" => new ExactScorer(),
            "normalized" => new NormalizedScorer(),
            "label" => new LabelScorer(),
            "label-likelihood" => new LabelLikelihoodScorer(),
            "contains" => new ContainsScorer(argument),
            "regex" => new RegexScorer(argument ?? throw new ArgumentException("'regex' needs a pattern: regex:PATTERN.")),
            "json" => new JsonValidScorer(),
            "json-schema" => new JsonSchemaScorer(argument ?? throw new ArgumentException("'json-schema' needs a schema: json-schema:{...}.")),
            "numeric" => new NumericScorer(argument),
            "judge" => new JudgeScorer(argument ?? throw new ArgumentException("'judge' needs an endpoint id: judge:ENDPOINT."), judge, rubric),
            "token-f1" => new TokenF1Scorer(),
            "rouge-l" => new RougeLScorer(),
            "json-fields" => new JsonFieldsScorer(),
            "assert" => new AssertionScorer(argument, judge, embed),
            _ => throw new ArgumentException($"Unknown scorer '{spec}'. Scorers: exact, normalized, label, label-likelihood, contains[:TEXT], regex:PATTERN, json, json-schema:SCHEMA, numeric[:TOLERANCE], judge:ENDPOINT, token-f1, rouge-l, json-fields, assert[:judge=ENDPOINT,embedding=ENDPOINT]."),
        };
    }

    /// <summary>Lower case, punctuation dropped, whitespace collapsed: "The  Answer!" and "the answer" agree.</summary>
    public static string Normalize(string text) => ReferenceScores.Normalize(text);

    /// <summary>Strips a Markdown code fence around JSON, as chat models often add one.</summary>
    internal static string StripFence(string output) => ReferenceScores.StripFence(output);
}

internal sealed class ExactScorer : Scorer
{
    public override string Name => ReferenceScores.Exact;

    public override ValueTask ScoreAsync(ScoreInput input, ScoreResult result, CancellationToken ct)
    {
        result.Scores[Name] = ReferenceScores.ExactMatch(input.Output, input.Expected!);
        return ValueTask.CompletedTask;
    }
}

internal sealed class NormalizedScorer : Scorer
{
    public override string Name => "normalized";

    public override ValueTask ScoreAsync(ScoreInput input, ScoreResult result, CancellationToken ct)
    {
        result.Scores[Name] = Normalize(input.Output) == Normalize(input.Expected!) ? 1 : 0;
        return ValueTask.CompletedTask;
    }
}

/// <summary>
/// Label accuracy: the predicted label is the normalized output when it is a known label, else the one known
/// label it names as a whole word, else <c>(other)</c>. Known labels are the dataset's expected values.
/// </summary>
internal sealed class LabelScorer : Scorer
{
    public const string Other = AspireTune.Contracts.Evaluation.EvaluationItemResult.NoLabel;
    private HashSet<string> _labels = new(StringComparer.Ordinal);

    public override string Name => "label";

    public void SetLabels(IEnumerable<string> expected) => _labels = expected.Select(Normalize).Where(l => l.Length > 0).ToHashSet(StringComparer.Ordinal);

    public override ValueTask ScoreAsync(ScoreInput input, ScoreResult result, CancellationToken ct)
    {
        var predicted = Predict(input.Output);
        result.Predicted = predicted;
        result.Scores[Name] = predicted == Normalize(input.Expected!) ? 1 : 0;
        return ValueTask.CompletedTask;
    }

    internal string Predict(string output)
    {
        var normalized = Normalize(output);
        if (_labels.Contains(normalized))
            return normalized;
        var words = " " + normalized + " ";
        string? found = null;
        foreach (var label in _labels)
        {
            if (!words.Contains(" " + label + " ", StringComparison.Ordinal))
                continue;
            if (found is not null)
                return Other; // names two labels: no single prediction
            found = label;
        }
        return found ?? Other;
    }
}

/// <summary>
/// Label accuracy scored by likelihood: 1 when the label the model finds most likely after the prompt (see
/// <see cref="LabelLikelihood"/>) is the expected one. Endpoints that cannot score give no value.
/// </summary>
internal sealed class LabelLikelihoodScorer : Scorer
{
    public override string Name => "label_likelihood";

    public override ValueTask ScoreAsync(ScoreInput input, ScoreResult result, CancellationToken ct)
    {
        if (input.LikelyLabel is { } likely)
            result.Scores[Name] = Normalize(likely) == Normalize(input.Expected!) ? 1 : 0;
        return ValueTask.CompletedTask;
    }
}

internal sealed class ContainsScorer(string? text) : Scorer
{
    public override string Name => "contains";
    public override bool NeedsExpected => text is null;

    public override ValueTask ScoreAsync(ScoreInput input, ScoreResult result, CancellationToken ct)
    {
        result.Scores[Name] = input.Output.Contains(text ?? input.Expected!.Trim(), StringComparison.OrdinalIgnoreCase) ? 1 : 0;
        return ValueTask.CompletedTask;
    }
}

internal sealed class RegexScorer : Scorer
{
    private readonly Regex _regex;

    public RegexScorer(string pattern)
    {
        try
        {
            _regex = new Regex(pattern, RegexOptions.CultureInvariant, TimeSpan.FromMilliseconds(200));
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"'regex:{pattern}' is not a valid .NET regular expression: {e.Message}");
        }
    }

    public override string Name => "regex";
    public override bool NeedsExpected => false;

    public override ValueTask ScoreAsync(ScoreInput input, ScoreResult result, CancellationToken ct)
    {
        try
        {
            result.Scores[Name] = _regex.IsMatch(input.Output) ? 1 : 0;
        }
        catch (RegexMatchTimeoutException)
        {
            result.Errors.Add("regex: the match took longer than 200 ms");
        }
        return ValueTask.CompletedTask;
    }
}

internal sealed class JsonValidScorer : Scorer
{
    public override string Name => "json";
    public override bool NeedsExpected => false;

    public override ValueTask ScoreAsync(ScoreInput input, ScoreResult result, CancellationToken ct)
    {
        result.Scores[Name] = IsJson(StripFence(input.Output)) ? 1 : 0;
        return ValueTask.CompletedTask;
    }

    internal static bool IsJson(string text)
    {
        try
        {
            using var _ = JsonDocument.Parse(text);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }
}

internal sealed class JsonSchemaScorer : Scorer
{
    private readonly JsonSchema _schema;

    public JsonSchemaScorer(string schema)
    {
        if (!JsonValidScorer.IsJson(schema))
            throw new ArgumentException("'json-schema:' must be followed by a JSON Schema document (JSON).");
        try
        {
            _schema = JsonSchema.FromJsonAsync(schema).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is Newtonsoft.Json.JsonException or InvalidOperationException or NotSupportedException)
        {
            throw new ArgumentException($"'json-schema:' is not a usable JSON Schema: {e.Message}");
        }
    }

    public override string Name => "json_schema";
    public override bool NeedsExpected => false;

    public override ValueTask ScoreAsync(ScoreInput input, ScoreResult result, CancellationToken ct)
    {
        var text = StripFence(input.Output);
        if (!JsonValidScorer.IsJson(text))
        {
            result.Scores[Name] = 0;
            return ValueTask.CompletedTask;
        }
        var errors = _schema.Validate(text);
        result.Scores[Name] = errors.Count == 0 ? 1 : 0;
        return ValueTask.CompletedTask;
    }
}

/// <summary>First number in the output vs the expected number: 1 when within the tolerance; also the absolute error.</summary>
internal sealed partial class NumericScorer : Scorer
{
    private readonly double _tolerance;

    public NumericScorer(string? tolerance)
    {
        if (tolerance is null)
            return;
        if (!double.TryParse(tolerance, NumberStyles.Float, CultureInfo.InvariantCulture, out _tolerance) || _tolerance < 0)
            throw new ArgumentException($"'numeric:{tolerance}': the tolerance must be a non-negative number, e.g. numeric:0.5.");
    }

    public override string Name => "numeric";

    [GeneratedRegex(@"[-+]?\d+(?:\.\d+)?")]
    private static partial Regex Number();

    public override ValueTask ScoreAsync(ScoreInput input, ScoreResult result, CancellationToken ct)
    {
        if (!double.TryParse(input.Expected!.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var expected))
        {
            result.Errors.Add($"numeric: expected '{Truncate(input.Expected)}' is not a number");
            return ValueTask.CompletedTask;
        }
        var match = Number().Match(input.Output);
        if (!match.Success)
        {
            result.Scores[Name] = 0;
            return ValueTask.CompletedTask;
        }
        var actual = double.Parse(match.Value, CultureInfo.InvariantCulture);
        var error = Math.Abs(actual - expected);
        result.Scores[Name] = error <= _tolerance + 1e-12 ? 1 : 0;
        result.Scores["numeric_abs_error"] = error;
        return ValueTask.CompletedTask;
    }

    internal static string Truncate(string? text) => text is null ? "" : text.Length <= 40 ? text : text[..40] + "...";
}

/// <summary>LLM-as-judge: a judge endpoint grades the answer 1-10 against a rubric; the score is grade / 10.</summary>
internal sealed partial class JudgeScorer(string endpoint, JudgeCall? judge, string? rubric) : Scorer
{
    internal const string DefaultRubric = "The answer is correct, complete and consistent with the expected answer; it adds nothing false.";
    private const string System = "You grade answers. Reply with a single integer from 1 (wrong) to 10 (perfect) on the first line, then at most one sentence of reason.";

    public override string Name => "judge";
    public override bool NeedsExpected => false;
    public override string? JudgeEndpoint => endpoint;

    [GeneratedRegex(@"\b(10|[1-9])\b")]
    private static partial Regex Grade();

    public override async ValueTask ScoreAsync(ScoreInput input, ScoreResult result, CancellationToken ct)
    {
        if (judge is null)
            throw new InvalidOperationException("The judge scorer was created without a judge.");
        var user = $"Rubric: {rubric ?? DefaultRubric}\n\nQuestion:\n{input.Input}\n\nExpected answer:\n{input.Expected ?? "(none given)"}\n\nAnswer to grade:\n{input.Output}\n\nGrade (1-10):";
        try
        {
            var reply = await judge(endpoint, System, user, ct);
            var firstLine = reply.Trim().Split('\n', 2)[0];
            var match = Grade().Match(firstLine);
            if (match.Success)
                result.Scores[Name] = int.Parse(match.Value, CultureInfo.InvariantCulture) / 10.0;
            else
                result.Errors.Add($"judge: the reply '{NumericScorer.Truncate(firstLine)}' holds no grade from 1 to 10");
        }
        catch (ModelCallException e)
        {
            result.Errors.Add($"judge: {e.Message}");
        }
    }
}

using System.Globalization;
using System.Numerics.Tensors;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Text;
using AspireTune.Contracts.Evaluation;
using AspireTune.Evaluation.Endpoints;

namespace AspireTune.Evaluation.Scoring;

/// <summary>Embeds texts with an endpoint's <c>/v1/embeddings</c>; provided by the run executor.</summary>
public delegate Task<IReadOnlyList<float[]>> EmbedCall(string endpointId, IReadOnlyList<string> texts, CancellationToken ct);

/// <summary>
/// <c>assert[:judge=ENDPOINT][,embedding=ENDPOINT]</c>: checks each item against the assertions in its own
/// metadata (<see cref="AssertedItemMetadata"/>), so every item can carry different checks. Scores:
/// <c>assert</c> (1 when all pass), <c>assert.TYPE</c> (1 when all of that type pass), and the raw
/// <c>similarity</c> and <c>rubric</c> values. <c>llm-rubric</c> asks the judge endpoint, <c>similar</c> embeds
/// with the embedding endpoint (default: the judge's).
/// </summary>
public sealed class AssertionScorer : Scorer
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly string? _judge;
    private readonly string? _embedding;
    private readonly JudgeCall? _judgeCall;
    private readonly EmbedCall? _embedCall;

    public AssertionScorer(string? argument, JudgeCall? judge, EmbedCall? embed)
    {
        foreach (var part in (argument ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var (key, value) = part.IndexOf('=') is var eq and > 0 ? (part[..eq].Trim(), part[(eq + 1)..].Trim()) : ("judge", part);
            if (key == "judge")
                _judge = value;
            else if (key == "embedding")
                _embedding = value;
            else
                throw new ArgumentException($"'assert:{argument}': unknown setting '{key}'; use assert:judge=ENDPOINT,embedding=ENDPOINT.");
        }
        _embedding ??= _judge;
        _judgeCall = judge;
        _embedCall = embed;
    }

    public override string Name => "assert";
    public override bool NeedsExpected => false;
    public override string? JudgeEndpoint => _judge;
    public override IEnumerable<string> Endpoints => new[] { _judge, _embedding }.OfType<string>().Distinct();

    /// <summary>The types this scorer knows, without the <c>not-</c> prefix.</summary>
    public static readonly IReadOnlySet<string> Types = new HashSet<string>(StringComparer.Ordinal)
    {
        "equals", "contains", "icontains", "contains-any", "contains-all", "icontains-any", "icontains-all", "regex",
        "starts-with", "is-json", "contains-json", "similar", "llm-rubric", "latency", "cost",
    };

    public override async ValueTask ScoreAsync(ScoreInput input, ScoreResult result, CancellationToken ct)
    {
        AssertedItemMetadata? metadata;
        try
        {
            metadata = input.Metadata is null ? null : JsonSerializer.SerializeToElement(input.Metadata).Deserialize<AssertedItemMetadata>(Json);
        }
        catch (JsonException e)
        {
            result.Errors.Add($"assert: the item's metadata is not assertion metadata ({e.Message})");
            return;
        }
        var all = true;
        var byType = new Dictionary<string, bool>(StringComparer.Ordinal);
        foreach (var assertion in metadata?.Assert ?? [])
        {
            var passed = await CheckAsync(assertion, input, result, ct);
            if (passed is null)
            {
                all = false;
                continue; // an error: recorded, and the item does not pass
            }
            all &= passed.Value;
            byType[assertion.Type] = byType.GetValueOrDefault(assertion.Type, true) && passed.Value;
        }
        result.Scores[Name] = all ? 1 : 0;
        foreach (var (type, passed) in byType)
            result.Scores[$"{Name}.{type}"] = passed ? 1 : 0;
    }

    /// <summary>True or false, or null when the check could not be made (the reason is in the result's errors).</summary>
    private async Task<bool?> CheckAsync(ItemAssertion assertion, ScoreInput input, ScoreResult result, CancellationToken ct)
    {
        var negate = assertion.Type.StartsWith("not-", StringComparison.Ordinal);
        var type = negate ? assertion.Type[4..] : assertion.Type;
        var output = input.Output;
        bool? passed;
        try
        {
            passed = type switch
            {
                "equals" => Equal(output, assertion.Value),
                "contains" => output.Contains(Text(assertion), StringComparison.Ordinal),
                "icontains" => output.Contains(Text(assertion), StringComparison.OrdinalIgnoreCase),
                "contains-any" => Texts(assertion).Any(t => output.Contains(t, StringComparison.Ordinal)),
                "contains-all" => Texts(assertion).All(t => output.Contains(t, StringComparison.Ordinal)),
                "icontains-any" => Texts(assertion).Any(t => output.Contains(t, StringComparison.OrdinalIgnoreCase)),
                "icontains-all" => Texts(assertion).All(t => output.Contains(t, StringComparison.OrdinalIgnoreCase)),
                "starts-with" => output.StartsWith(Text(assertion), StringComparison.Ordinal),
                "regex" => new Regex(Text(assertion), RegexOptions.CultureInvariant, TimeSpan.FromMilliseconds(200)).IsMatch(output),
                "is-json" => await JsonMatchesAsync(StripFence(output), assertion, result, ct),
                "contains-json" => await ContainsJsonAsync(output, assertion, result, ct),
                "latency" => input.LatencyS * 1000 <= Threshold(assertion),
                "cost" => input.CostUsd <= Threshold(assertion),
                "similar" => await SimilarAsync(output, assertion, result, ct),
                "llm-rubric" => await RubricAsync(input, assertion, result, ct),
                _ => throw new ArgumentException($"unknown assertion type '{assertion.Type}'"),
            };
        }
        catch (Exception e) when (e is ArgumentException or RegexMatchTimeoutException or ModelCallException)
        {
            result.Errors.Add($"assert {assertion.Type}: {e.Message}");
            return null;
        }
        return passed is null ? null : passed.Value != negate;
    }

    private static string Text(ItemAssertion assertion) => assertion.Value switch
    {
        { ValueKind: JsonValueKind.String } v => v.GetString()!,
        { ValueKind: JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False } v => v.GetRawText(),
        _ => throw new ArgumentException("needs a text value"),
    };

    private static IEnumerable<string> Texts(ItemAssertion assertion) => assertion.Value switch
    {
        { ValueKind: JsonValueKind.Array } list => list.EnumerateArray().Select(v => v.ValueKind == JsonValueKind.String ? v.GetString()! : v.GetRawText()).ToList(),
        // promptfoo also accepts one comma-separated text.
        _ => Text(assertion).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
    };

    private static double Threshold(ItemAssertion assertion) =>
        assertion.Threshold ?? throw new ArgumentException("needs a threshold");

    /// <summary>Text equals text exactly; an object or array value equals an output holding the same JSON.</summary>
    private static bool Equal(string output, JsonElement? value)
    {
        if (value is not { ValueKind: JsonValueKind.Object or JsonValueKind.Array } expected)
            return value is { } v && output == (v.ValueKind == JsonValueKind.String ? v.GetString() : v.GetRawText());
        try
        {
            using var actual = JsonDocument.Parse(output);
            return JsonElement.DeepEquals(actual.RootElement, expected);
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>Valid JSON, and when the value is a JSON Schema, valid against it.</summary>
    private static async Task<bool> JsonMatchesAsync(string json, ItemAssertion assertion, ScoreResult result, CancellationToken ct)
    {
        if (!JsonValidScorer.IsJson(json))
            return false;
        if (assertion.Value is not { ValueKind: JsonValueKind.Object } schema)
            return true;
        var check = new ScoreResult();
        await new JsonSchemaScorer(schema.GetRawText()).ScoreAsync(new ScoreInput("", null, json), check, ct);
        result.Errors.AddRange(check.Errors);
        return check.Scores.Values.FirstOrDefault() == 1;
    }

    /// <summary>Some JSON object or array inside the text (prose around it allowed) that passes <see cref="JsonMatchesAsync"/>.</summary>
    private static async Task<bool> ContainsJsonAsync(string output, ItemAssertion assertion, ScoreResult result, CancellationToken ct)
    {
        var bytes = Encoding.UTF8.GetBytes(output);
        for (var i = 0; i < bytes.Length; i++)
        {
            if (bytes[i] is not ((byte)'{' or (byte)'['))
                continue;
            try
            {
                var reader = new Utf8JsonReader(bytes.AsSpan(i));
                using var document = JsonDocument.ParseValue(ref reader);
                if (await JsonMatchesAsync(document.RootElement.GetRawText(), assertion, result, ct))
                    return true;
            }
            catch (JsonException)
            {
                // not JSON from here: try the next bracket
            }
        }
        return false;
    }

    private async Task<bool?> SimilarAsync(string output, ItemAssertion assertion, ScoreResult result, CancellationToken ct)
    {
        if (_embedCall is null || _embedding is null)
            throw new ArgumentException("needs an embedding endpoint: scorer assert:judge=ENDPOINT or assert:embedding=ENDPOINT");
        var expected = Texts(assertion).ToList();
        var vectors = await _embedCall(_embedding, [output, .. expected], ct);
        var best = vectors.Skip(1).Max(v => (double)TensorPrimitives.CosineSimilarity(vectors[0], v));
        result.Scores["similarity"] = best;
        return best >= (assertion.Threshold ?? 0.75);
    }

    private async Task<bool?> RubricAsync(ScoreInput input, ItemAssertion assertion, ScoreResult result, CancellationToken ct)
    {
        if (_judge is null)
            throw new ArgumentException("needs a judge endpoint: scorer assert:judge=ENDPOINT");
        var grade = new ScoreResult();
        await new JudgeScorer(_judge, _judgeCall, Text(assertion)).ScoreAsync(input, grade, ct);
        result.Errors.AddRange(grade.Errors);
        if (!grade.Scores.TryGetValue("judge", out var score))
            return null;
        result.Scores["rubric"] = score;
        return score >= (assertion.Threshold ?? 0.5);
    }

    /// <summary>The problem with one assertion as written, or null when this scorer can check it.</summary>
    public static string? Refuse(string type) =>
        Types.Contains(type.StartsWith("not-", StringComparison.Ordinal) ? type[4..] : type)
            ? null
            : string.Create(CultureInfo.InvariantCulture, $"assertion type '{type}' is not supported; supported: {string.Join(", ", Types)} (each also as not-TYPE)");
}

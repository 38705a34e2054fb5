using System.Text.Json;

namespace AspireTune.Contracts.Evaluation;

/// <summary>
/// The <c>metadata</c> of a dataset item that carries its own checks (written by <c>aspiretune eval</c> from a
/// promptfoo test, read by the Evaluation scorer <c>assert</c>). Other members of the metadata are ignored.
/// </summary>
public sealed record AssertedItemMetadata
{
    /// <summary>The checks; the item passes when every one passes (none: it passes).</summary>
    public IReadOnlyList<ItemAssertion> Assert { get; init; } = [];

    /// <summary>The variables the prompt was rendered with, kept for reading results.</summary>
    public IReadOnlyDictionary<string, string>? Vars { get; init; }

    /// <summary>The test's description, when it has one.</summary>
    public string? Description { get; init; }

    /// <summary>0-based index of the test in the configuration it came from.</summary>
    public int Test { get; init; }
}

/// <summary>
/// One check of an answer, in promptfoo's terms: <c>equals</c>, <c>contains</c>, <c>icontains</c>,
/// <c>contains-any</c>, <c>contains-all</c>, <c>icontains-any</c>, <c>icontains-all</c>, <c>regex</c>,
/// <c>starts-with</c>, <c>is-json</c>, <c>contains-json</c>, <c>similar</c>, <c>llm-rubric</c>, <c>latency</c>,
/// <c>cost</c>, each also negated with a <c>not-</c> prefix.
/// </summary>
public sealed record ItemAssertion
{
    /// <summary>The assertion type, e.g. <c>contains</c> or <c>not-regex</c>.</summary>
    public required string Type { get; init; }

    /// <summary>
    /// The expected value: text, a list of texts (<c>contains-any</c>, <c>similar</c>), a JSON Schema
    /// (<c>is-json</c>, <c>contains-json</c>) or a rubric (<c>llm-rubric</c>); variables already filled in.
    /// </summary>
    public JsonElement? Value { get; init; }

    /// <summary>
    /// <c>similar</c>: least cosine similarity (default 0.75); <c>llm-rubric</c>: least judge score in [0, 1]
    /// (default 0.5); <c>latency</c>: most milliseconds; <c>cost</c>: most USD per call.
    /// </summary>
    public double? Threshold { get; init; }
}

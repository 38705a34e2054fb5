using System.Diagnostics.CodeAnalysis;
using System.Text.Json.Serialization;
using AspireTune.Contracts.Common;

namespace AspireTune.Contracts.Comparison;

/// <summary>What kind of contender a candidate is; written as <c>prompted</c>, <c>retrieval</c>, <c>fine-tuned</c>, <c>knn</c>.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<CandidateKind>))]
public enum CandidateKind
{
    /// <summary>A model prompted with the best of several prompt variants.</summary>
    [JsonStringEnumMemberName("prompted")]
    Prompted,

    /// <summary>A model prompted with the nearest training examples (dynamic few-shot).</summary>
    [JsonStringEnumMemberName("retrieval")]
    Retrieval,

    /// <summary>The base model fine-tuned on the training split and served by AspireTune.</summary>
    [JsonStringEnumMemberName("fine-tuned")]
    FineTuned,

    /// <summary>The non-LLM baseline: a vote of the nearest labelled examples.</summary>
    [JsonStringEnumMemberName("knn")]
    Knn,
}

/// <summary>Wire names of <see cref="CandidateKind"/>, as the API, the bus and the database hold them.</summary>
public static class CandidateKinds
{
    private static readonly WireNames<CandidateKind> Names =
        new((CandidateKind.Prompted, "prompted"), (CandidateKind.Retrieval, "retrieval"), (CandidateKind.FineTuned, "fine-tuned"), (CandidateKind.Knn, "knn"));

    /// <summary>Every kind's wire name, in the order experiments run them.</summary>
    public static IReadOnlyList<string> All => Names.All;

    /// <summary>The kind's wire name, e.g. <c>fine-tuned</c>.</summary>
    public static string ToWireName(this CandidateKind kind) => Names.Of(kind);

    /// <summary>Parses a wire name (case and surrounding space ignored).</summary>
    public static bool TryParse(string? name, out CandidateKind kind) => Names.TryParse(name, out kind);

    /// <summary>Parses a wire name or throws <see cref="FormatException"/>.</summary>
    public static CandidateKind Parse(string name) =>
        TryParse(name, out var kind) ? kind : throw new FormatException($"'{name}' is not a candidate kind ({string.Join(", ", All)}).");
}

/// <summary>
/// A candidate's name: its kind and what it runs on - an Evaluation endpoint id (prompted, retrieval) or a
/// model registry id (fine-tuned); the kNN baseline runs on nothing. Written <c>kind:target</c> or <c>knn</c>.
/// </summary>
public readonly record struct CandidateName(CandidateKind Kind, string? Target)
{
    /// <summary><c>kind:target</c>, or the kind alone when there is no target.</summary>
    public override string ToString() => Target is null ? Kind.ToWireName() : $"{Kind.ToWireName()}:{Target}";

    /// <summary>Parses <c>kind:target</c> or <c>kind</c>.</summary>
    public static bool TryParse(string? text, [NotNullWhen(true)] out CandidateName? name)
    {
        name = null;
        if (text is null)
            return false;
        var colon = text.IndexOf(':');
        if (!CandidateKinds.TryParse(colon < 0 ? text : text[..colon], out var kind))
            return false;
        name = new CandidateName(kind, colon < 0 ? null : text[(colon + 1)..]);
        return true;
    }

    /// <summary>Parses <c>kind:target</c> or <c>kind</c>, or throws <see cref="FormatException"/>.</summary>
    public static CandidateName Parse(string text) =>
        TryParse(text, out var name) ? name.Value : throw new FormatException($"'{text}' is not a candidate name (kind:target).");
}

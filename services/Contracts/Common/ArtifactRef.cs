namespace AspireTune.Contracts.Common;

/// <summary>
/// A claim check: a large payload (dataset, per-item results, checkpoint, report) kept in the artifact
/// store and referenced from a message instead of travelling inside it.
/// </summary>
public sealed record ArtifactRef
{
    /// <summary>Store-relative id, e.g. <c>datasets/3f2a.../train.jsonl</c>.</summary>
    public required string Id { get; init; }

    /// <summary>Lower-case hex SHA-256 of the content; consumers verify it before use.</summary>
    public required string Sha256 { get; init; }

    /// <summary>Size in bytes.</summary>
    public required long Length { get; init; }

    /// <summary>IANA media type, e.g. <c>application/jsonl</c>.</summary>
    public string ContentType { get; init; } = "application/octet-stream";
}

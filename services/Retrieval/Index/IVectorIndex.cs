using System.Text.Json;

namespace AspireTune.Retrieval.Index;

/// <summary>
/// The vector index port: Qdrant (QdrantVectorIndex) when <c>ConnectionStrings:vectordb</c> is set, the
/// embedded HNSW index (EmbeddedVectorIndex) otherwise. Ids are UUID strings (Qdrant's requirement).
/// </summary>
public interface IVectorIndex
{
    /// <summary><c>embedded</c> or <c>qdrant</c>.</summary>
    string Kind { get; }

    /// <summary>Creates the collection when missing (idempotent).</summary>
    Task CreateCollectionAsync(string collection, int dimensions, VectorDistance distance, CancellationToken ct);

    Task DeleteCollectionAsync(string collection, CancellationToken ct);

    /// <summary>Inserts or replaces points by id.</summary>
    Task UpsertAsync(string collection, IReadOnlyList<IndexPoint> points, CancellationToken ct);

    Task DeleteAsync(string collection, IReadOnlyCollection<string> ids, CancellationToken ct);

    /// <summary>The k nearest points (best first) whose payload matches every filter condition.</summary>
    Task<IReadOnlyList<IndexHit>> QueryAsync(string collection, ReadOnlyMemory<float> vector, int k, IReadOnlyDictionary<string, string>? filter, bool withVectors, CancellationToken ct);

    Task<long> CountAsync(string collection, CancellationToken ct);
}

/// <summary>What is stored with a vector. Filters match <c>label</c> or a field of <see cref="Metadata"/>.</summary>
public sealed record PointPayload
{
    public required string Text { get; init; }
    public string? Label { get; init; }
    public required string DocumentId { get; init; }
    public Dictionary<string, JsonElement> Metadata { get; init; } = [];

    /// <summary>Whether every condition holds; values compare as text (a JSON number 3 matches "3").</summary>
    public bool Matches(IReadOnlyDictionary<string, string>? filter)
    {
        if (filter is null)
            return true;
        foreach (var (field, expected) in filter)
        {
            var actual = field == FilterFields.Label ? Label : Metadata.TryGetValue(field, out var value) ? AsText(value) : null;
            if (!string.Equals(actual, expected, StringComparison.Ordinal))
                return false;
        }
        return true;
    }

    public static string AsText(JsonElement value) => value.ValueKind == JsonValueKind.String ? value.GetString()! : value.GetRawText();
}

public static class FilterFields
{
    /// <summary>The reserved filter key that matches the example's label rather than a metadata field.</summary>
    public const string Label = "label";
}

public sealed record IndexPoint(string Id, ReadOnlyMemory<float> Vector, PointPayload Payload);

public sealed record IndexHit(string Id, float Score, PointPayload Payload, float[]? Vector);

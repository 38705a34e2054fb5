using System.Text.Json;
using System.Text.Json.Serialization;

namespace AspireTune.Contracts.Retrieval;

// The Retrieval service's HTTP shapes that other services call: neighbours (Evaluation, per item) and
// classify (Comparison's kNN baseline).

/// <summary>How a query ranks points.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<SearchMode>))]
public enum SearchMode
{
    /// <summary>Cosine (or the collection's distance) on embeddings.</summary>
    [JsonStringEnumMemberName("dense")]
    Dense,

    /// <summary>BM25 keyword ranking and dense ranking fused by reciprocal rank.</summary>
    [JsonStringEnumMemberName("hybrid")]
    Hybrid,
}

/// <summary><c>POST /api/retrieval/collections/{collection}/neighbors</c>: the nearest points to a text.</summary>
public sealed record NeighborsRequest
{
    /// <summary>The query text.</summary>
    public required string Text { get; init; }

    /// <summary>How many neighbours. Default 4.</summary>
    public int K { get; init; } = 4;

    /// <summary>Exact matches on metadata fields, or on <c>label</c>.</summary>
    public Dictionary<string, JsonElement>? Filter { get; init; }

    /// <summary>Ranking; default dense.</summary>
    public SearchMode Mode { get; init; } = SearchMode.Dense;

    /// <summary>Re-rank by maximal marginal relevance for diverse results. Default false.</summary>
    public bool Mmr { get; init; }

    /// <summary>MMR trade-off: 1 is pure relevance, 0 pure diversity. Default 0.5.</summary>
    public double MmrLambda { get; init; } = 0.5;
}

/// <summary>A point found by a query.</summary>
public sealed record Neighbor
{
    /// <summary>Point id.</summary>
    public required string Id { get; init; }

    /// <summary>Similarity under the collection's distance (higher is nearer).</summary>
    public required double Score { get; init; }

    /// <summary>The point's text (a chunk, or an example's input).</summary>
    public required string Text { get; init; }

    /// <summary>The example's label; null for a passage.</summary>
    public string? Label { get; init; }

    /// <summary>Metadata stored with the point.</summary>
    public required IReadOnlyDictionary<string, JsonElement> Metadata { get; init; }
}

/// <summary>The answer to a neighbours query, best first.</summary>
public sealed record NeighborsResponse
{
    /// <summary>The collection searched.</summary>
    public required string Collection { get; init; }

    /// <summary>Neighbours, best first.</summary>
    public required IReadOnlyList<Neighbor> Neighbors { get; init; }
}

/// <summary><c>POST /api/retrieval/collections/{collection}/classify</c>: a label by a vote of the nearest labelled examples (the kNN baseline).</summary>
public sealed record ClassifyRequest
{
    /// <summary>The text to classify.</summary>
    public required string Text { get; init; }

    /// <summary>Voters. Default 5.</summary>
    public int K { get; init; } = 5;

    /// <summary>Weight votes by similarity (default) or count them equally.</summary>
    public bool WeightBySimilarity { get; init; } = true;

    /// <summary>Exact matches on metadata fields.</summary>
    public Dictionary<string, JsonElement>? Filter { get; init; }

    /// <summary>Ranking; default dense.</summary>
    public SearchMode Mode { get; init; } = SearchMode.Dense;
}

/// <summary>The vote's outcome.</summary>
public sealed record ClassifyResponse
{
    /// <summary>The collection searched.</summary>
    public required string Collection { get; init; }

    /// <summary>The winning label.</summary>
    public required string Label { get; init; }

    /// <summary>The winner's share of the (weighted) votes, in [0, 1].</summary>
    public required double Confidence { get; init; }

    /// <summary>Weighted votes by label.</summary>
    public required IReadOnlyDictionary<string, double> Votes { get; init; }

    /// <summary>The voters, best first.</summary>
    public required IReadOnlyList<Neighbor> Neighbors { get; init; }
}

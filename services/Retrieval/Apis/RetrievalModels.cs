using System.Text.Json;
using AspireTune.Retrieval.Index;
using AspireTune.Retrieval.Ingestion;
using AspireTune.Contracts.Retrieval;

namespace AspireTune.Retrieval.Apis;

/// <summary>Create a collection. Every point in it is embedded by one model into vectors of one size.</summary>
public sealed record CreateCollectionRequest
{
    /// <summary>Lower-case letters, digits, '-' and '_', at most 64 characters, starting with a letter or digit.</summary>
    public required string Name { get; init; }

    /// <summary><c>local-hashing</c> (default, offline) or a hosted model name served by Retrieval:HostedEmbeddings.</summary>
    public string? EmbeddingModel { get; init; }

    /// <summary>Vector size; must equal what the model returns. Default Retrieval:DefaultDimensions (384).</summary>
    public int? Dimensions { get; init; }

    /// <summary>Cosine (default), Dot or Euclid.</summary>
    public VectorDistance Distance { get; init; } = VectorDistance.Cosine;
}

public sealed record CollectionInfo(string Name, string EmbeddingModel, int Dimensions, VectorDistance Distance, long Points, int Documents,
    IReadOnlyList<string> MetadataFields, string Index, DateTimeOffset CreatedAt);

/// <summary>Documents to chunk, embed and index. A document id seen before is replaced when its content changed.</summary>
public sealed record IngestDocumentsRequest
{
    public required IReadOnlyList<DocumentInput> Documents { get; init; }

    /// <summary>Chunk size in cl100k tokens (16 to 8192). Default 256.</summary>
    public int ChunkTokens { get; init; } = 256;

    /// <summary>Tokens repeated from the end of one chunk at the start of the next (at most half a chunk). Default 32.</summary>
    public int ChunkOverlapTokens { get; init; } = 32;
}

public sealed record DocumentInput
{
    /// <summary>Stable id of the document; re-ingesting the same id replaces it.</summary>
    public required string Id { get; init; }

    /// <summary>The content: plain text, Markdown, or JSONL records (<c>text</c> or <c>input</c>/<c>expected</c>, optional <c>id</c>, <c>metadata</c>).</summary>
    public required string Text { get; init; }

    public DocumentFormat Format { get; init; } = DocumentFormat.Text;

    /// <summary>Flat key/value metadata stored with every chunk; filters match these fields.</summary>
    public Dictionary<string, JsonElement>? Metadata { get; init; }
}

/// <summary>Labelled examples (dynamic few-shot and the kNN baseline); the id of each is a stable hash of its input.</summary>
public sealed record IndexExamplesRequest
{
    public required IReadOnlyList<ExampleInput> Examples { get; init; }
}

public sealed record ExampleInput
{
    public required string Input { get; init; }
    public string? Expected { get; init; }
    public Dictionary<string, JsonElement>? Metadata { get; init; }
}

public sealed record IngestResult(string Collection, int Documents, int Unchanged, int Chunks, long Points);

/// <summary>
/// Build a prompt for one input from its nearest labelled examples and passages. Placeholders in the template:
/// <c>{{input}}</c>, <c>{{examples}}</c> (labelled neighbours as Input/Output pairs), <c>{{context}}</c> (unlabelled passages).
/// </summary>
public sealed record PromptRequest
{
    public required string Input { get; init; }

    /// <summary>The template; default: context, then examples, then the input.</summary>
    public string? Template { get; init; }

    /// <summary>Neighbours to consider (best first). Default 4.</summary>
    public int K { get; init; } = 4;

    /// <summary>Most cl100k tokens the filled prompt may have; neighbours that do not fit are left out. Default 2048.</summary>
    public int TokenBudget { get; init; } = 2048;

    public Dictionary<string, JsonElement>? Filter { get; init; }

    public SearchMode Mode { get; init; } = SearchMode.Dense;

    public bool Mmr { get; init; }
}

public sealed record PromptResponse(string Collection, string Prompt, int Tokens, IReadOnlyList<Neighbor> Examples, IReadOnlyList<Neighbor> Passages, int LeftOut);

/// <summary>Retrieval quality on labelled queries: each query names what counts as relevant.</summary>
public sealed record EvaluateRequest
{
    public required IReadOnlyList<LabelledQuery> Queries { get; init; }

    /// <summary>Cut-off for hit rate, MRR and nDCG. Default 10.</summary>
    public int K { get; init; } = 10;

    public SearchMode Mode { get; init; } = SearchMode.Dense;
}

/// <summary>A query and its relevant results: point or document ids, and/or a label that relevant points carry.</summary>
public sealed record LabelledQuery
{
    public required string Text { get; init; }
    public IReadOnlyList<string>? RelevantIds { get; init; }
    public string? RelevantLabel { get; init; }
}

public sealed record EvaluateResponse(string Collection, int Queries, int K, SearchMode Mode, double HitRate, double Mrr, double Ndcg);

using System.ComponentModel.DataAnnotations;

namespace AspireTune.Retrieval;

/// <summary>Retrieval service settings (section <c>Retrieval</c>).</summary>
public sealed class RetrievalOptions
{
    public const string SectionName = "Retrieval";

    /// <summary>Embedding model of a collection created without one (and by <c>IndexDataset</c>). Default <c>local-hashing</c>, which needs no download.</summary>
    [Required]
    public string DefaultEmbeddingModel { get; set; } = Embeddings.HashingEmbeddingGenerator.ModelName;

    /// <summary>Vector dimensions of a collection created without them. Default 384.</summary>
    [Range(8, 8192)]
    public int DefaultDimensions { get; set; } = 384;

    /// <summary>Texts per embedding call (hosted models bill and rate-limit per call). Default 64.</summary>
    [Range(1, 2048)]
    public int EmbeddingBatchSize { get; set; } = 64;

    /// <summary>Largest ingest request body or artifact, in bytes. Default 16 MiB.</summary>
    [Range(1024, long.MaxValue)]
    public long MaxUploadBytes { get; set; } = 16 * 1024 * 1024;

    /// <summary>Largest <c>k</c> a query may ask for. Default 100.</summary>
    [Range(1, 10_000)]
    public int MaxK { get; set; } = 100;

    /// <summary>
    /// Longest query text (neighbours, dynamic-prompt input, classify, evaluation queries) and prompt template, in
    /// characters; longer ones get a 400 that states the limit. Default 200,000.
    /// </summary>
    [Range(1, 100_000_000)]
    public int MaxQueryCharacters { get; set; } = 200_000;
}

/// <summary>The embedded vector index (section <c>Retrieval:Index</c>), used when no Qdrant is configured.</summary>
public sealed class EmbeddedIndexOptions
{
    public const string SectionName = "Retrieval:Index";

    /// <summary>HNSW links per node on upper layers (twice as many on the base layer). Default 16.</summary>
    [Range(4, 128)]
    public int M { get; set; } = 16;

    /// <summary>Beam width while building the graph; higher gives better recall and slower inserts. Default 200.</summary>
    [Range(8, 2000)]
    public int EfConstruction { get; set; } = 200;

    /// <summary>Beam width while searching (raised to k when smaller). Default 64.</summary>
    [Range(8, 5000)]
    public int EfSearch { get; set; } = 64;

    /// <summary>Collections with at most this many live points are searched exactly (a full scan) instead of through the graph. Default 5,000.</summary>
    [Range(0, int.MaxValue)]
    public int ExactSearchThreshold { get; set; } = 5_000;

    /// <summary>Folder under the data folder that holds one index file per collection. Default <c>retrieval-index</c>.</summary>
    [Required]
    public string Folder { get; set; } = "retrieval-index";
}

/// <summary>
/// Hosted embeddings through an OpenAI-compatible <c>/v1/embeddings</c> API (section <c>Retrieval:HostedEmbeddings</c>):
/// OpenAI, Azure OpenAI's v1 endpoint, or any compatible server. A collection whose embedding model is not
/// <c>local-hashing</c> is embedded here.
/// </summary>
public sealed class HostedEmbeddingOptions
{
    public const string SectionName = "Retrieval:HostedEmbeddings";

    /// <summary>Base URL including <c>/v1</c>, e.g. <c>https://api.openai.com/v1</c>. Unset: hosted models are refused.</summary>
    public Uri? Endpoint { get; set; }

    /// <summary>API key (a secret: set it through user secrets or the environment; never logged).</summary>
    public string? ApiKey { get; set; }

    /// <summary>Per-request network timeout in seconds (hosted models can be slow under load). Default 120.</summary>
    [Range(1, 3600)]
    public int TimeoutSeconds { get; set; } = 120;
}

/// <summary>
/// Qdrant (section <c>Retrieval:Qdrant</c>). The endpoint and key come from <c>ConnectionStrings:vectordb</c>
/// (<c>Endpoint=http://host:6334;Key=...</c>, Qdrant's gRPC port, as Aspire injects it, or a plain URL); the settings here tune the client.
/// </summary>
public sealed class QdrantOptions
{
    public const string SectionName = "Retrieval:Qdrant";

    /// <summary>Points per upsert request. Default 256.</summary>
    [Range(1, 10_000)]
    public int UpsertBatchSize { get; set; } = 256;

    /// <summary>Retries of a failed call (unavailable, deadline exceeded, resource exhausted) before answering 503. Default 3.</summary>
    [Range(0, 10)]
    public int RetryCount { get; set; } = 3;

    /// <summary>First retry delay in milliseconds, doubled each retry. Default 500.</summary>
    [Range(1, 60_000)]
    public int RetryDelayMs { get; set; } = 500;

    /// <summary>Timeout of one attempt in seconds, so a hung server never hangs a request. Default 10.</summary>
    [Range(1, 600)]
    public int AttemptTimeoutSeconds { get; set; } = 10;
}

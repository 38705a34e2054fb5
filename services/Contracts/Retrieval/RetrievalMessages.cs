using AspireTune.Contracts.Common;

namespace AspireTune.Contracts.Retrieval;

/// <summary>Command: index a labelled dataset's examples into a collection (for dynamic few-shot and kNN).</summary>
public sealed record IndexDataset
{
    /// <summary>Request id; the correlation id of the resulting <see cref="CollectionIndexed"/>.</summary>
    public required Guid RequestId { get; init; }

    /// <summary>The experiment, when started by the workflow.</summary>
    public Guid? ExperimentId { get; init; }

    /// <summary>Target collection (created when missing).</summary>
    public required string Collection { get; init; }

    /// <summary>Dataset (JSONL: <c>input</c>, <c>expected</c>, optional <c>metadata</c>).</summary>
    public required ArtifactRef Dataset { get; init; }
}

/// <summary>Command: ingest documents (text, Markdown, JSONL records) into a collection as chunks.</summary>
public sealed record IngestDocuments
{
    /// <summary>Request id; the correlation id of the resulting <see cref="CollectionIndexed"/>.</summary>
    public required Guid RequestId { get; init; }

    /// <summary>The experiment, when started by the workflow.</summary>
    public Guid? ExperimentId { get; init; }

    /// <summary>Target collection (created when missing).</summary>
    public required string Collection { get; init; }

    /// <summary>The documents, each an artifact.</summary>
    public required IReadOnlyList<ArtifactRef> Documents { get; init; }

    /// <summary>Chunk size in tokens.</summary>
    public int ChunkTokens { get; init; } = 256;

    /// <summary>Overlap between consecutive chunks in tokens.</summary>
    public int ChunkOverlapTokens { get; init; } = 32;
}

/// <summary>Event: a collection holds what was asked to be indexed.</summary>
public sealed record CollectionIndexed
{
    /// <summary>The request this answers (correlation id).</summary>
    public required Guid RequestId { get; init; }

    /// <summary>The experiment, when the request belonged to one.</summary>
    public Guid? ExperimentId { get; init; }

    /// <summary>Collection name.</summary>
    public required string Collection { get; init; }

    /// <summary>Documents or examples indexed by this request.</summary>
    public required int Documents { get; init; }

    /// <summary>Points (chunks) now in the collection.</summary>
    public required long Points { get; init; }

    /// <summary>Embedding model used.</summary>
    public required string EmbeddingModel { get; init; }

    /// <summary>Vector dimensions.</summary>
    public required int Dimensions { get; init; }

    /// <summary>When indexing finished (UTC).</summary>
    public required DateTimeOffset IndexedAt { get; init; }
}

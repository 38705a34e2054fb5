using AspireTune.ServiceDefaults.Data;
using AspireTune.ServiceDefaults.Messaging;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.Retrieval.Data;

/// <summary>The Retrieval service's own database (connection name <c>retrievaldb</c>).</summary>
public sealed class RetrievalDbContext(DbContextOptions<RetrievalDbContext> options) : DbContext(options)
{
    public const string ConnectionName = "retrievaldb";

    public DbSet<CollectionRecord> Collections => Set<CollectionRecord>();
    public DbSet<DocumentRecord> Documents => Set<DocumentRecord>();
    public DbSet<ChunkRecord> Chunks => Set<ChunkRecord>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.AddInbox().AddOutbox();
        modelBuilder.Entity<CollectionRecord>(e =>
        {
            e.ToTable("collections");
            e.HasKey(c => c.Name);
            e.Property(c => c.Name).HasMaxLength(64);
            e.Property(c => c.Version).IsConcurrencyToken();
        });
        modelBuilder.Entity<DocumentRecord>(e =>
        {
            e.ToTable("documents");
            e.HasKey(d => new { d.Collection, d.DocumentId });
        });
        modelBuilder.Entity<ChunkRecord>(e =>
        {
            e.ToTable("chunks");
            e.HasKey(c => new { c.Collection, c.Id });
            e.HasIndex(c => new { c.Collection, c.DocumentId });
        });
    }
}

/// <summary>A collection: the embedding model and vector shape every point in it shares.</summary>
public sealed class CollectionRecord
{
    public required string Name { get; init; }
    public required string EmbeddingModel { get; init; }
    public required int Dimensions { get; init; }
    public required string Distance { get; init; }
    public DateTimeOffset CreatedAt { get; init; } = DateTimeOffset.UtcNow;

    /// <summary>Bumped on every change; keyword-index caches compare it to know they are current.</summary>
    public long Version { get; set; }

    /// <summary>Metadata field names seen so far, JSON array; filters on other names are refused.</summary>
    public string MetadataFields { get; set; } = "[]";

    public long Points { get; set; }
    public int DocumentCount { get; set; }
}

/// <summary>A source document (or labelled example) and the chunk ids its current version produced.</summary>
public sealed class DocumentRecord
{
    public required string Collection { get; init; }
    public required string DocumentId { get; init; }
    public required string ContentHash { get; set; }

    /// <summary>JSON array of chunk ids, so a re-ingest can delete the chunks the new version no longer has.</summary>
    public required string ChunkIds { get; set; }

    public DateTimeOffset IngestedAt { get; set; } = DateTimeOffset.UtcNow;
}

/// <summary>A chunk's text and payload: what search returns and what keyword (BM25) search reads.</summary>
public sealed class ChunkRecord
{
    public required string Collection { get; init; }
    public required string Id { get; init; }
    public required string DocumentId { get; set; }
    public required int Ordinal { get; set; }
    public required string Text { get; set; }
    public string? Label { get; set; }
    public string Metadata { get; set; } = "{}";
}

using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using AspireTune.Retrieval.Apis;
using AspireTune.Retrieval.Data;
using AspireTune.Retrieval.Embeddings;
using AspireTune.Retrieval.Index;
using AspireTune.Retrieval.Ingestion;
using AspireTune.Retrieval.Search;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace AspireTune.Retrieval;

/// <summary>
/// Collections and what goes into them (queries are <see cref="RetrievalQueries"/>). The database holds
/// collections, documents and chunk texts (the source of truth for payloads and keyword search); the vector index
/// holds the vectors. Writes embed first and touch the index and the database only once every vector is in hand,
/// so a failed re-ingest leaves the old version searchable.
/// </summary>
public sealed partial class RetrievalService(
    RetrievalDbContext db,
    IVectorIndex index,
    EmbeddingService embeddings,
    KeywordIndexCache keywords,
    IOptions<RetrievalOptions> options,
    ILogger<RetrievalService> logger)
{
    private static readonly ConcurrentDictionary<string, SemaphoreSlim> WriteLocks = new();
    private RetrievalOptions Options => options.Value;

    [GeneratedRegex("^[a-z0-9][a-z0-9_-]{0,63}$")]
    private static partial Regex CollectionName();

    public static void ValidateName(string name)
    {
        if (string.IsNullOrEmpty(name) || !CollectionName().IsMatch(name))
            throw new RetrievalValidationException("name", $"'{name}' is not a valid collection name: use 1 to 64 lower-case letters, digits, '-' or '_', starting with a letter or digit.");
    }

    /// <summary>A UUID derived from the SHA-256 of a text: the same text always gets the same point id.</summary>
    public static string StableId(string text) => new Guid(SHA256.HashData(Encoding.UTF8.GetBytes(text)).AsSpan(0, 16)).ToString();

    private static string Sha256(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    // ---- collections ----

    public async Task<(CollectionInfo Info, bool Created)> CreateCollectionAsync(CreateCollectionRequest request, CancellationToken ct)
    {
        ValidateName(request.Name);
        var model = string.IsNullOrWhiteSpace(request.EmbeddingModel) ? Options.DefaultEmbeddingModel : request.EmbeddingModel.Trim();
        var dimensions = request.Dimensions ?? Options.DefaultDimensions;
        if (dimensions is < 8 or > 8192)
            throw new RetrievalValidationException("dimensions", $"dimensions must be between 8 and 8192; {dimensions} was given.");
        embeddings.EnsureAvailable(model);
        if (await db.Collections.FindAsync([request.Name], ct) is { } existing)
        {
            if (existing.EmbeddingModel != model || existing.Dimensions != dimensions || existing.Distance != request.Distance.ToString())
                throw new CollectionConflictException($"Collection '{request.Name}' exists with model '{existing.EmbeddingModel}', {existing.Dimensions} dimensions and {existing.Distance} distance. Delete it first or use another name.");
            return (Info(existing), false);
        }
        await index.CreateCollectionAsync(request.Name, dimensions, request.Distance, ct);
        var record = new CollectionRecord { Name = request.Name, EmbeddingModel = model, Dimensions = dimensions, Distance = request.Distance.ToString() };
        db.Collections.Add(record);
        await db.SaveChangesAsync(ct);
        logger.LogInformation("Created collection {Collection} ({Model}, {Dimensions} dimensions, {Distance}, {Index} index)", record.Name, model, dimensions, record.Distance, index.Kind);
        return (Info(record), true);
    }

    /// <summary>The collection, created with the default model and size when missing (for the workflow's commands).</summary>
    public async Task<CollectionRecord> EnsureCollectionAsync(string name, CancellationToken ct)
    {
        ValidateName(name);
        if (await db.Collections.FindAsync([name], ct) is { } existing)
            return existing;
        await CreateCollectionAsync(new CreateCollectionRequest { Name = name }, ct);
        return await RequireAsync(name, ct);
    }

    public async Task<IReadOnlyList<CollectionInfo>> ListAsync(CancellationToken ct)
    {
        var records = await db.Collections.AsNoTracking().OrderBy(c => c.Name).ToListAsync(ct);
        return records.Select(Info).ToList();
    }

    public async Task<CollectionInfo> GetAsync(string name, CancellationToken ct) => Info(await RequireAsync(name, ct));

    public async Task DeleteCollectionAsync(string name, CancellationToken ct)
    {
        var record = await RequireAsync(name, ct);
        await index.DeleteCollectionAsync(name, ct);
        await db.Chunks.Where(c => c.Collection == name).ExecuteDeleteAsync(ct);
        await db.Documents.Where(d => d.Collection == name).ExecuteDeleteAsync(ct);
        db.Collections.Remove(record);
        await db.SaveChangesAsync(ct);
        keywords.Forget(name);
        logger.LogInformation("Deleted collection {Collection}", name);
    }

    public async Task<CollectionRecord> RequireAsync(string name, CancellationToken ct) =>
        await db.Collections.FindAsync([name], ct) ?? throw new CollectionNotFoundException(name);

    private CollectionInfo Info(CollectionRecord r) => new(r.Name, r.EmbeddingModel, r.Dimensions, Enum.Parse<VectorDistance>(r.Distance), r.Points, r.DocumentCount,
        JsonSerializer.Deserialize<List<string>>(r.MetadataFields) ?? [], index.Kind, r.CreatedAt);

    // ---- ingestion ----

    /// <summary>Chunks, embeds and indexes documents; unchanged ones (same id and content hash) are skipped.</summary>
    public async Task<IngestResult> IngestAsync(string collection, IReadOnlyList<DocumentInput> documents, int chunkTokens, int overlapTokens, Action<RetrievalDbContext, IngestResult>? sameSave, CancellationToken ct)
    {
        var record = await RequireAsync(collection, ct);
        if (documents.Count == 0)
            throw new RetrievalValidationException("documents", "No documents were given.");
        if (chunkTokens is < 16 or > 8192)
            throw new RetrievalValidationException("chunkTokens", $"chunkTokens must be between 16 and 8192; {chunkTokens} was given.");
        if (overlapTokens < 0 || overlapTokens > chunkTokens / 2)
            throw new RetrievalValidationException("chunkOverlapTokens", $"chunkOverlapTokens must be between 0 and half of chunkTokens ({chunkTokens / 2}); {overlapTokens} was given.");

        var pending = new Dictionary<string, PendingDocument>(StringComparer.Ordinal);
        for (var i = 0; i < documents.Count; i++)
        {
            var doc = documents[i];
            if (doc is null)
                throw new RetrievalValidationException($"documents[{i}]", $"Document {i} is null.");
            if (string.IsNullOrWhiteSpace(doc.Id))
                throw new RetrievalValidationException($"documents[{i}].id", $"Document {i} has no id.");
            if (string.IsNullOrWhiteSpace(doc.Text))
                throw new RetrievalValidationException($"documents[{i}].text", $"Document '{doc.Id}' is empty.");
            if (doc.Format == DocumentFormat.Jsonl)
            {
                foreach (var p in JsonlRecords.Parse(doc.Id, doc.Text, doc.Metadata, chunkTokens, overlapTokens, ct))
                    pending[p.DocumentId] = p;
                continue;
            }
            var metadata = doc.Metadata ?? [];
            ct.ThrowIfCancellationRequested();
            var chunks = Chunker.Chunk(doc.Text, doc.Format, chunkTokens, overlapTokens, ct);
            var hash = Sha256($"{doc.Format}\n{chunkTokens}/{overlapTokens}\n{JsonSerializer.Serialize(metadata)}\n{doc.Text}");
            pending[doc.Id] = new PendingDocument(doc.Id, hash,
                chunks.Select((text, n) => new PendingChunk(StableId($"{doc.Id}\n{n}\n{text}"), text, null, metadata)).ToList());
        }
        return await WriteAsync(record, pending.Values.ToList(), sameSave, ct);
    }

    /// <summary>Indexes labelled examples, one point each, id = stable hash of the input (re-indexing replaces).</summary>
    public async Task<IngestResult> IndexExamplesAsync(string collection, IReadOnlyList<ExampleInput> examples, Action<RetrievalDbContext, IngestResult>? sameSave, CancellationToken ct)
    {
        var record = await RequireAsync(collection, ct);
        if (examples.Count == 0)
            throw new RetrievalValidationException("examples", "No examples were given.");
        var pending = new Dictionary<string, PendingDocument>(StringComparer.Ordinal);
        for (var i = 0; i < examples.Count; i++)
        {
            var example = examples[i];
            if (example is null)
                throw new RetrievalValidationException($"examples[{i}]", $"Example {i} is null.");
            if (string.IsNullOrWhiteSpace(example.Input))
                throw new RetrievalValidationException($"examples[{i}].input", $"Example {i} has an empty input.");
            var p = ExampleDocument(example.Input, example.Expected, example.Metadata);
            pending[p.DocumentId] = p;
        }
        return await WriteAsync(record, pending.Values.ToList(), sameSave, ct);
    }

    /// <summary>Writes examples parsed elsewhere (a dataset artifact) with the same rules as <see cref="IndexExamplesAsync"/>.</summary>
    internal async Task<IngestResult> WriteExamplesAsync(string collection, IReadOnlyList<PendingDocument> examples, Action<RetrievalDbContext, IngestResult>? sameSave, CancellationToken ct)
    {
        var record = await RequireAsync(collection, ct);
        var unique = new Dictionary<string, PendingDocument>(StringComparer.Ordinal);
        foreach (var example in examples)
            unique[example.DocumentId] = example;
        return await WriteAsync(record, unique.Values.ToList(), sameSave, ct);
    }

    internal static PendingDocument ExampleDocument(string input, string? expected, Dictionary<string, JsonElement>? metadata)
    {
        var id = StableId(input);
        metadata ??= [];
        var hash = Sha256($"{input}\n{expected}\n{JsonSerializer.Serialize(metadata)}");
        return new PendingDocument(id, hash, [new PendingChunk(id, input, expected, metadata)]);
    }

    private async Task<IngestResult> WriteAsync(CollectionRecord collection, List<PendingDocument> pending, Action<RetrievalDbContext, IngestResult>? sameSave, CancellationToken ct)
    {
        using var activity = RetrievalTelemetry.ActivitySource.StartActivity("retrieval.ingest");
        activity?.SetTag("retrieval.collection", collection.Name);
        var gate = WriteLocks.GetOrAdd(collection.Name, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(ct);
        try
        {
            var ids = pending.Select(p => p.DocumentId).ToList();
            var existing = await db.Documents.Where(d => d.Collection == collection.Name && ids.Contains(d.DocumentId)).ToDictionaryAsync(d => d.DocumentId, ct);
            var changed = pending.Where(p => !existing.TryGetValue(p.DocumentId, out var e) || e.ContentHash != p.ContentHash).ToList();
            var unchanged = pending.Count - changed.Count;
            var chunks = changed.SelectMany(p => p.Chunks.Select(c => (Document: p, Chunk: c))).ToList();

            if (chunks.Count > 0)
            {
                var vectors = await embeddings.EmbedAsync(collection.Name, collection.EmbeddingModel, collection.Dimensions, chunks.Select(c => c.Chunk.Text).ToList(), ct);
                var points = chunks.Select((c, i) => new IndexPoint(c.Chunk.Id, vectors[i], new PointPayload
                {
                    Text = c.Chunk.Text,
                    Label = c.Chunk.Label,
                    DocumentId = c.Document.DocumentId,
                    Metadata = c.Chunk.Metadata,
                })).ToList();
                await index.UpsertAsync(collection.Name, points, ct);
                RetrievalTelemetry.PointsIndexed.Add(points.Count, new KeyValuePair<string, object?>("index", index.Kind));
            }

            var changedIds = changed.Select(p => p.DocumentId).ToList();
            var oldChunks = await db.Chunks.Where(c => c.Collection == collection.Name && changedIds.Contains(c.DocumentId)).ToListAsync(ct);
            db.Chunks.RemoveRange(oldChunks);
            // A chunk id can move between documents only if two ids share text and ordinal: the last write owns it.
            var added = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (document, chunk) in chunks)
            {
                if (!added.Add(chunk.Id))
                    continue;
                if (oldChunks.FirstOrDefault(o => o.Id == chunk.Id) is { } reused)
                {
                    db.Entry(reused).State = EntityState.Modified;
                    reused.DocumentId = document.DocumentId;
                    reused.Ordinal = document.Chunks.IndexOf(chunk);
                    reused.Text = chunk.Text;
                    reused.Label = chunk.Label;
                    reused.Metadata = JsonSerializer.Serialize(chunk.Metadata);
                    continue;
                }
                db.Chunks.Add(new ChunkRecord
                {
                    Collection = collection.Name,
                    Id = chunk.Id,
                    DocumentId = document.DocumentId,
                    Ordinal = document.Chunks.IndexOf(chunk),
                    Text = chunk.Text,
                    Label = chunk.Label,
                    Metadata = JsonSerializer.Serialize(chunk.Metadata),
                });
            }
            foreach (var document in changed)
            {
                var chunkIds = JsonSerializer.Serialize(document.Chunks.Select(c => c.Id));
                if (existing.TryGetValue(document.DocumentId, out var row))
                {
                    row.ContentHash = document.ContentHash;
                    row.ChunkIds = chunkIds;
                    row.IngestedAt = DateTimeOffset.UtcNow;
                }
                else
                    db.Documents.Add(new DocumentRecord { Collection = collection.Name, DocumentId = document.DocumentId, ContentHash = document.ContentHash, ChunkIds = chunkIds });
            }

            var fields = new SortedSet<string>(JsonSerializer.Deserialize<List<string>>(collection.MetadataFields) ?? [], StringComparer.Ordinal);
            foreach (var chunk in chunks)
                fields.UnionWith(chunk.Chunk.Metadata.Keys);
            collection.MetadataFields = JsonSerializer.Serialize(fields);
            collection.Version++;
            await db.SaveChangesAsync(ct);

            // Only now, with the new version committed, do the chunks the new versions no longer have go.
            var newIds = chunks.Select(c => c.Chunk.Id).ToHashSet(StringComparer.Ordinal);
            var stale = oldChunks.Select(o => o.Id).Where(id => !newIds.Contains(id)).ToList();
            if (stale.Count > 0)
                await index.DeleteAsync(collection.Name, stale, ct);

            collection.Points = await db.Chunks.LongCountAsync(c => c.Collection == collection.Name, ct);
            collection.DocumentCount = await db.Documents.CountAsync(d => d.Collection == collection.Name, ct);
            collection.Version++;
            var result = new IngestResult(collection.Name, changed.Count, unchanged, chunks.Count, collection.Points);
            // The caller's inbox and outbox rows commit with the final counts; a crash before this save re-indexes
            // on redelivery, which finds every document unchanged.
            sameSave?.Invoke(db, result);
            await db.SaveChangesAsync(ct);
            activity?.SetTag("retrieval.documents", changed.Count);
            activity?.SetTag("retrieval.chunks", chunks.Count);
            logger.LogInformation("Indexed {Documents} documents ({Unchanged} unchanged) as {Chunks} chunks into {Collection}; {Points} points now",
                changed.Count, unchanged, chunks.Count, collection.Name, collection.Points);
            return result;
        }
        finally
        {
            gate.Release();
        }
    }
}

internal sealed record PendingDocument(string DocumentId, string ContentHash, List<PendingChunk> Chunks);

internal sealed record PendingChunk(string Id, string Text, string? Label, Dictionary<string, JsonElement> Metadata);

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Numerics.Tensors;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using AspireTune.Contracts.Retrieval;
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
/// Collections, ingestion and queries. The database holds collections, documents and chunk texts (the source of
/// truth for payloads and keyword search); the vector index holds the vectors. Writes embed first and touch the
/// index and the database only once every vector is in hand, so a failed re-ingest leaves the old version searchable.
/// </summary>
public sealed partial class RetrievalService(
    RetrievalDbContext db,
    IVectorIndex index,
    EmbeddingService embeddings,
    KeywordIndexCache keywords,
    IOptions<RetrievalOptions> options,
    ILogger<RetrievalService> logger)
{
    private const int RrfK = 60; // the constant of Cormack et al.'s reciprocal rank fusion
    private const string DefaultTemplate = "{{context}}\n\n{{examples}}\n\nInput: {{input}}\nOutput:";
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

    private async Task<CollectionRecord> RequireAsync(string name, CancellationToken ct) =>
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
            if (string.IsNullOrWhiteSpace(doc.Id))
                throw new RetrievalValidationException($"documents[{i}].id", $"Document {i} has no id.");
            if (string.IsNullOrWhiteSpace(doc.Text))
                throw new RetrievalValidationException($"documents[{i}].text", $"Document '{doc.Id}' is empty.");
            if (doc.Format == DocumentFormat.Jsonl)
            {
                foreach (var p in JsonlRecords.Parse(doc.Id, doc.Text, doc.Metadata, chunkTokens, overlapTokens))
                    pending[p.DocumentId] = p;
                continue;
            }
            var metadata = doc.Metadata ?? [];
            var chunks = Chunker.Chunk(doc.Text, doc.Format, chunkTokens, overlapTokens);
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

    // ---- queries ----

    public async Task<NeighborsResponse> NeighborsAsync(string collection, NeighborsRequest request, CancellationToken ct)
    {
        var record = await RequireAsync(collection, ct);
        var hits = await RankAsync(record, request.Text, request.K, request.Filter, request.Mode, request.Mmr, request.MmrLambda, ct);
        return new NeighborsResponse { Collection = collection, Neighbors = hits.Select(ToNeighbor).ToList() };
    }

    public async Task<PromptResponse> PromptAsync(string collection, PromptRequest request, CancellationToken ct)
    {
        var record = await RequireAsync(collection, ct);
        var template = string.IsNullOrWhiteSpace(request.Template) ? DefaultTemplate : request.Template;
        if (!template.Contains("{{input}}", StringComparison.Ordinal))
            throw new RetrievalValidationException("template", "The template has no {{input}} placeholder.");
        if (request.TokenBudget is < 1 or > 1_000_000)
            throw new RetrievalValidationException("tokenBudget", $"tokenBudget must be between 1 and 1,000,000; {request.TokenBudget} was given.");
        var hits = await RankAsync(record, request.Input, request.K, request.Filter, request.Mode, request.Mmr, 0.5, ct);

        var examples = new List<Scored>();
        var passages = new List<Scored>();
        var prompt = FillTemplate(template, request.Input, examples, passages);
        var tokens = Chunker.CountTokens(prompt);
        if (tokens > request.TokenBudget)
            throw new RetrievalValidationException("tokenBudget", $"The template and input alone take {tokens} tokens, over the budget of {request.TokenBudget}.");
        var leftOut = 0;
        foreach (var hit in hits)
        {
            var target = hit.Payload.Label is null ? passages : examples;
            target.Add(hit);
            var candidate = FillTemplate(template, request.Input, examples, passages);
            var candidateTokens = Chunker.CountTokens(candidate);
            if (candidateTokens > request.TokenBudget)
            {
                target.RemoveAt(target.Count - 1);
                leftOut++;
                continue;
            }
            prompt = candidate;
            tokens = candidateTokens;
        }
        return new PromptResponse(collection, prompt, tokens, examples.Select(ToNeighbor).ToList(), passages.Select(ToNeighbor).ToList(), leftOut);
    }

    internal static string FillTemplate(string template, string input, IReadOnlyList<Scored> examples, IReadOnlyList<Scored> passages)
    {
        var exampleText = examples.Count == 0 ? "" : "Examples:\n" + string.Join("\n\n", examples.Select(e => $"Input: {e.Payload.Text}\nOutput: {e.Payload.Label}"));
        var contextText = passages.Count == 0 ? "" : "Context:\n" + string.Join("\n\n", passages.Select((p, i) => $"[{i + 1}] {p.Payload.Text}"));
        var filled = template.Replace("{{examples}}", exampleText).Replace("{{context}}", contextText).Replace("{{input}}", input);
        return BlankLines().Replace(filled, "\n\n").TrimStart();
    }

    [GeneratedRegex(@"\n{3,}")]
    private static partial Regex BlankLines();

    public async Task<ClassifyResponse> ClassifyAsync(string collection, ClassifyRequest request, CancellationToken ct)
    {
        var record = await RequireAsync(collection, ct);
        var hits = await RankAsync(record, request.Text, request.K, request.Filter, request.Mode, false, 0.5, ct);
        var voters = hits.Where(h => h.Payload.Label is not null).ToList();
        if (voters.Count == 0)
            throw new NoLabelledExamplesException(collection);
        var votes = new Dictionary<string, double>(StringComparer.Ordinal);
        var firstRank = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < voters.Count; i++)
        {
            var label = voters[i].Payload.Label!;
            // Similarity weights are floored just above zero so a far but agreeing neighbour still counts a little.
            votes[label] = votes.GetValueOrDefault(label) + (request.WeightBySimilarity ? Math.Max(voters[i].Score, 0) + 1e-6 : 1);
            firstRank.TryAdd(label, i);
        }
        var winner = votes.OrderByDescending(v => v.Value).ThenBy(v => firstRank[v.Key]).First();
        return new ClassifyResponse { Collection = collection, Label = winner.Key, Confidence = winner.Value / votes.Values.Sum(), Votes = votes, Neighbors = voters.Select(ToNeighbor).ToList() };
    }

    public async Task<EvaluateResponse> EvaluateAsync(string collection, EvaluateRequest request, CancellationToken ct)
    {
        var record = await RequireAsync(collection, ct);
        if (request.Queries.Count == 0)
            throw new RetrievalValidationException("queries", "No queries were given.");
        double hitSum = 0, rrSum = 0, ndcgSum = 0;
        KeywordSnapshot? labels = null;
        for (var q = 0; q < request.Queries.Count; q++)
        {
            var query = request.Queries[q];
            if (query.RelevantIds is not { Count: > 0 } && string.IsNullOrEmpty(query.RelevantLabel))
                throw new RetrievalValidationException($"queries[{q}]", $"Query {q} names neither relevantIds nor relevantLabel.");
            var hits = await RankAsync(record, query.Text, request.K, null, request.Mode, false, 0.5, ct);
            bool Relevant(Scored h) =>
                (query.RelevantIds is { } ids && (ids.Contains(h.Id) || ids.Contains(h.Payload.DocumentId))) ||
                (query.RelevantLabel is { } label && h.Payload.Label == label);
            int totalRelevant;
            if (query.RelevantLabel is { } wanted)
            {
                labels ??= await keywords.GetAsync(db, record, ct);
                totalRelevant = labels.Payloads.Count(p => p.Label == wanted);
            }
            else
                totalRelevant = query.RelevantIds!.Count;
            double dcg = 0;
            var first = -1;
            for (var i = 0; i < hits.Count; i++)
            {
                if (!Relevant(hits[i]))
                    continue;
                dcg += 1 / Math.Log2(i + 2);
                if (first < 0)
                    first = i;
            }
            var idcg = Enumerable.Range(0, Math.Min(request.K, Math.Max(totalRelevant, 1))).Sum(i => 1 / Math.Log2(i + 2));
            hitSum += first >= 0 ? 1 : 0;
            rrSum += first >= 0 ? 1.0 / (first + 1) : 0;
            ndcgSum += dcg / idcg;
        }
        var n = request.Queries.Count;
        return new EvaluateResponse(collection, n, request.K, request.Mode, hitSum / n, rrSum / n, ndcgSum / n);
    }

    internal sealed record Scored(string Id, double Score, PointPayload Payload, float[]? Vector);

    private static Neighbor ToNeighbor(Scored s) => new() { Id = s.Id, Score = Math.Round(s.Score, 6), Text = s.Payload.Text, Label = s.Payload.Label, Metadata = s.Payload.Metadata };

    private async Task<List<Scored>> RankAsync(CollectionRecord collection, string text, int k, Dictionary<string, JsonElement>? rawFilter, SearchMode mode, bool mmr, double lambda, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(text))
            throw new RetrievalValidationException("text", "The query text is empty.");
        if (k < 1 || k > Options.MaxK)
            throw new RetrievalValidationException("k", $"k must be between 1 and {Options.MaxK} (Retrieval:MaxK); {k} was given.");
        if (lambda is < 0 or > 1)
            throw new RetrievalValidationException("mmrLambda", $"mmrLambda must be between 0 and 1; {lambda} was given.");
        var filter = ValidateFilter(collection, rawFilter);
        var start = Stopwatch.GetTimestamp();
        using var activity = RetrievalTelemetry.ActivitySource.StartActivity("retrieval.query");
        activity?.SetTag("retrieval.collection", collection.Name);
        activity?.SetTag("retrieval.mode", mode.ToString().ToLowerInvariant());
        activity?.SetTag("retrieval.k", k);

        var pool = mmr || mode == SearchMode.Hybrid ? Math.Max(4 * k, 20) : k;
        var queryVector = (await embeddings.EmbedAsync(collection.Name, collection.EmbeddingModel, collection.Dimensions, [text], ct))[0];
        var dense = await index.QueryAsync(collection.Name, queryVector, pool, filter, withVectors: mmr, ct);
        var ranked = dense.Select(h => new Scored(h.Id, h.Score, h.Payload, h.Vector)).ToList();

        if (mode == SearchMode.Hybrid)
        {
            var snapshot = await keywords.GetAsync(db, collection, ct);
            var keyword = snapshot.Index.Search(text, pool, filter is null ? null : doc => snapshot.Payloads[doc].Matches(filter));
            var fused = new Dictionary<string, (double Score, PointPayload Payload, float[]? Vector)>(StringComparer.Ordinal);
            for (var i = 0; i < ranked.Count; i++)
                fused[ranked[i].Id] = (1.0 / (RrfK + i + 1), ranked[i].Payload, ranked[i].Vector);
            for (var i = 0; i < keyword.Count; i++)
            {
                var id = snapshot.Index.Ids[keyword[i].Doc];
                var add = 1.0 / (RrfK + i + 1);
                fused[id] = fused.TryGetValue(id, out var f) ? (f.Score + add, f.Payload, f.Vector) : (add, snapshot.Payloads[keyword[i].Doc], null);
            }
            ranked = fused.Select(f => new Scored(f.Key, f.Value.Score, f.Value.Payload, f.Value.Vector)).OrderByDescending(s => s.Score).ThenBy(s => s.Id, StringComparer.Ordinal).ToList();
        }

        if (mmr)
            ranked = await DiversifyAsync(collection, queryVector, ranked, k, lambda, ct);
        var result = ranked.Take(k).ToList();
        RetrievalTelemetry.QueryDuration.Record(Stopwatch.GetElapsedTime(start).TotalSeconds,
            new KeyValuePair<string, object?>("mode", mode.ToString().ToLowerInvariant()), new KeyValuePair<string, object?>("index", index.Kind));
        return result;
    }

    /// <summary>Maximal marginal relevance (Carbonell and Goldstein): trade similarity to the query against similarity to what is already picked.</summary>
    private async Task<List<Scored>> DiversifyAsync(CollectionRecord collection, float[] query, List<Scored> candidates, int k, double lambda, CancellationToken ct)
    {
        var missing = candidates.Where(c => c.Vector is null).ToList();
        if (missing.Count > 0)
        {
            var vectors = await embeddings.EmbedAsync(collection.Name, collection.EmbeddingModel, collection.Dimensions, missing.Select(m => m.Payload.Text).ToList(), ct);
            var byId = missing.Select((m, i) => (m.Id, Vector: vectors[i])).ToDictionary(x => x.Id, x => x.Vector);
            candidates = candidates.Select(c => c.Vector is null ? c with { Vector = byId[c.Id] } : c).ToList();
        }
        var relevance = candidates.Select(c => (double)TensorPrimitives.CosineSimilarity(query, c.Vector!)).ToList();
        var selected = new List<int>();
        var remaining = Enumerable.Range(0, candidates.Count).ToList();
        while (selected.Count < k && remaining.Count > 0)
        {
            var best = remaining.MaxBy(i => lambda * relevance[i] - (1 - lambda) * (selected.Count == 0 ? 0 : selected.Max(s => (double)TensorPrimitives.CosineSimilarity(candidates[i].Vector!, candidates[s].Vector!))));
            selected.Add(best);
            remaining.Remove(best);
        }
        return selected.Select(i => candidates[i]).ToList();
    }

    private static Dictionary<string, string>? ValidateFilter(CollectionRecord collection, Dictionary<string, JsonElement>? filter)
    {
        if (filter is not { Count: > 0 })
            return null;
        var known = JsonSerializer.Deserialize<List<string>>(collection.MetadataFields) ?? [];
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (field, value) in filter)
        {
            if (field != FilterFields.Label && !known.Contains(field))
                throw new RetrievalValidationException($"filter.{field}",
                    $"Collection '{collection.Name}' has no metadata field '{field}'. Known fields: {(known.Count == 0 ? "(none)" : string.Join(", ", known))}, and 'label'.");
            if (value.ValueKind is JsonValueKind.Object or JsonValueKind.Array or JsonValueKind.Null or JsonValueKind.Undefined)
                throw new RetrievalValidationException($"filter.{field}", $"Filter '{field}' must be a string, number or boolean to match exactly.");
            result[field] = PointPayload.AsText(value);
        }
        return result;
    }
}

internal sealed record PendingDocument(string DocumentId, string ContentHash, List<PendingChunk> Chunks);

internal sealed record PendingChunk(string Id, string Text, string? Label, Dictionary<string, JsonElement> Metadata);

public sealed class NoLabelledExamplesException(string collection)
    : RetrievalException($"No labelled examples are near this text in collection '{collection}': the kNN classifier needs points with a label (index a dataset or POST examples).")
{
    public override int StatusCode => StatusCodes.Status422UnprocessableEntity;
    public override string Title => "Nothing to vote with.";
}

using System.Collections.Concurrent;
using System.Text.Json;
using AspireTune.Retrieval.Data;
using AspireTune.Retrieval.Index;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.Retrieval.Search;

/// <summary>
/// BM25 indexes built from the chunks table, one per collection, rebuilt when the collection's version moves on
/// (the version lives in the database, so every replica sees a write by any other).
/// </summary>
public sealed class KeywordIndexCache
{
    private readonly ConcurrentDictionary<string, KeywordSnapshot> _snapshots = new();

    internal async Task<KeywordSnapshot> GetAsync(RetrievalDbContext db, CollectionRecord collection, CancellationToken ct)
    {
        if (_snapshots.TryGetValue(collection.Name, out var cached) && cached.Version == collection.Version)
            return cached;
        var chunks = await db.Chunks.AsNoTracking().Where(c => c.Collection == collection.Name).OrderBy(c => c.Id).ToListAsync(ct);
        var payloads = chunks.Select(c => new PointPayload
        {
            Text = c.Text,
            Label = c.Label,
            DocumentId = c.DocumentId,
            Metadata = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(c.Metadata) ?? [],
        }).ToArray();
        var snapshot = new KeywordSnapshot(collection.Version, new Bm25Index(chunks.Select(c => c.Id).ToList(), chunks.Select(c => c.Text).ToList()), payloads);
        _snapshots[collection.Name] = snapshot;
        return snapshot;
    }

    public void Forget(string collection) => _snapshots.TryRemove(collection, out _);
}

internal sealed record KeywordSnapshot(long Version, Bm25Index Index, PointPayload[] Payloads);

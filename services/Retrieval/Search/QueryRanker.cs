using System.Diagnostics;
using System.Numerics.Tensors;
using System.Text.Json;
using AspireTune.Contracts.Retrieval;
using AspireTune.Retrieval.Data;
using AspireTune.Retrieval.Embeddings;
using AspireTune.Retrieval.Index;
using Microsoft.Extensions.Options;

namespace AspireTune.Retrieval.Search;

/// <summary>How the points for a query are ranked: embed the text, query the vector index, fuse with keyword ranks, diversify.</summary>
public sealed class QueryRanker(RetrievalDbContext db, IVectorIndex index, EmbeddingService embeddings, KeywordIndexCache keywords, IOptions<RetrievalOptions> options)
{
    private const int RrfK = 60; // the constant of Cormack et al.'s reciprocal rank fusion
    private RetrievalOptions Options => options.Value;

    /// <summary>A point with its score; the vector only when MMR needs it.</summary>
    public sealed record Scored(string Id, double Score, PointPayload Payload, float[]? Vector);

    public static Neighbor ToNeighbor(Scored s) => new() { Id = s.Id, Score = Math.Round(s.Score, 6), Text = s.Payload.Text, Label = s.Payload.Label, Metadata = s.Payload.Metadata };

    /// <summary>The k best points for a text: dense, or fused with BM25 (hybrid), optionally diversified (MMR); filters and k checked first.</summary>
    public async Task<List<Scored>> RankAsync(CollectionRecord collection, string text, int k, Dictionary<string, JsonElement>? rawFilter, SearchMode mode, bool mmr, double lambda, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(text))
            throw new RetrievalValidationException("text", "The query text is empty.");
        if (text.Length > Options.MaxQueryCharacters)
            throw new RetrievalValidationException("text", $"The query text is {text.Length:N0} characters; the limit is {Options.MaxQueryCharacters:N0} (Retrieval:MaxQueryCharacters).");
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

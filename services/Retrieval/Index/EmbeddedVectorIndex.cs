using System.Collections.Concurrent;
using System.Text.Json;
using AspireTune.ServiceDefaults.Data;
using Microsoft.Extensions.Options;

namespace AspireTune.Retrieval.Index;

/// <summary>
/// The one-process vector index: an HNSW graph per collection, kept in memory and written to
/// <c>&lt;data&gt;/retrieval-index/&lt;collection&gt;.hnsw</c> after every change (written to a temporary file and
/// renamed, so a crash leaves the previous version). Small or filtered searches scan exactly.
/// </summary>
public sealed class EmbeddedVectorIndex(DataRoot data, IOptions<EmbeddedIndexOptions> options, ILogger<EmbeddedVectorIndex> logger) : IVectorIndex
{
    private const string Extension = ".hnsw";
    private readonly ConcurrentDictionary<string, Lazy<EmbeddedCollection?>> _open = new();
    private readonly EmbeddedIndexOptions _options = options.Value;
    private string Folder => data.Folder(_options.Folder);

    public string Kind => "embedded";

    public Task CreateCollectionAsync(string collection, int dimensions, VectorDistance distance, CancellationToken ct)
    {
        lock (_open)
        {
            if (Open(collection) is { } existing)
            {
                if (existing.Graph.Dimensions != dimensions || existing.Graph.Distance != distance)
                    throw new CollectionConflictException($"The embedded index already holds '{collection}' with {existing.Graph.Dimensions} dimensions and {existing.Graph.Distance} distance.");
                return Task.CompletedTask;
            }
            var created = new EmbeddedCollection(new HnswGraph(dimensions, distance, _options.M, _options.EfConstruction));
            created.Save(PathOf(collection));
            _open[collection] = new Lazy<EmbeddedCollection?>(created);
        }
        return Task.CompletedTask;
    }

    public Task DeleteCollectionAsync(string collection, CancellationToken ct)
    {
        lock (_open)
        {
            _open.TryRemove(collection, out _);
            File.Delete(PathOf(collection));
        }
        return Task.CompletedTask;
    }

    public Task UpsertAsync(string collection, IReadOnlyList<IndexPoint> points, CancellationToken ct) => WriteAsync(collection, target =>
    {
        foreach (var point in points)
            CheckDimensions(collection, target, point.Vector.Length);
        foreach (var point in points)
        {
            RemoveNode(target, point.Id);
            var node = target.Graph.Add(point.Vector.Span);
            target.Ids.Add(point.Id);
            target.Payloads.Add(point.Payload);
            target.NodeOf[point.Id] = node;
        }
    });

    public Task DeleteAsync(string collection, IReadOnlyCollection<string> ids, CancellationToken ct) => WriteAsync(collection, target =>
    {
        foreach (var id in ids)
            RemoveNode(target, id);
    });

    private static void RemoveNode(EmbeddedCollection target, string id)
    {
        if (!target.NodeOf.Remove(id, out var node))
            return;
        target.Graph.Remove(node);
        target.Payloads[node] = null;
    }

    /// <summary>One writer per collection; the file is rewritten after every change so a restart finds it.</summary>
    private Task WriteAsync(string collection, Action<EmbeddedCollection> change)
    {
        var target = Require(collection);
        target.Lock.EnterWriteLock();
        try
        {
            change(target);
            CompactIfWasteful(collection, target);
            target.Save(PathOf(collection));
        }
        finally
        {
            target.Lock.ExitWriteLock();
        }
        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<IndexHit>> QueryAsync(string collection, ReadOnlyMemory<float> vector, int k, IReadOnlyDictionary<string, string>? filter, bool withVectors, CancellationToken ct)
    {
        var target = Require(collection);
        target.Lock.EnterReadLock();
        try
        {
            CheckDimensions(collection, target, vector.Length);
            var graph = target.Graph;
            var live = graph.Count - graph.RemovedCount;
            // A filter can exclude most of the graph's neighbourhoods, so filtered searches scan exactly.
            var found = filter is { Count: > 0 } || live <= _options.ExactSearchThreshold
                ? graph.SearchExact(vector.Span, k, filter is { Count: > 0 } ? node => target.Payloads[node]!.Matches(filter) : null)
                : graph.Search(vector.Span, k, Math.Max(_options.EfSearch, k));
            IReadOnlyList<IndexHit> hits = found
                .Select(f => new IndexHit(target.Ids[f.Node], graph.Score(f.Distance), target.Payloads[f.Node]!, withVectors ? graph.Vector(f.Node).ToArray() : null))
                .ToList();
            return Task.FromResult(hits);
        }
        finally
        {
            target.Lock.ExitReadLock();
        }
    }

    public Task<long> CountAsync(string collection, CancellationToken ct)
    {
        var target = Require(collection);
        target.Lock.EnterReadLock();
        try
        {
            return Task.FromResult((long)target.NodeOf.Count);
        }
        finally
        {
            target.Lock.ExitReadLock();
        }
    }

    private static void CheckDimensions(string collection, EmbeddedCollection target, int length)
    {
        if (length != target.Graph.Dimensions)
            throw new DimensionMismatchException(collection, "(given vector)", target.Graph.Dimensions, length);
    }

    /// <summary>Replaced and deleted points stay in the graph as waypoints; rebuild once they outnumber the live ones.</summary>
    private void CompactIfWasteful(string collection, EmbeddedCollection target)
    {
        var graph = target.Graph;
        if (graph.RemovedCount < 1024 || graph.RemovedCount < graph.Count / 2)
            return;
        var rebuilt = new HnswGraph(graph.Dimensions, graph.Distance, graph.M, graph.EfConstruction, initialCapacity: graph.Count - graph.RemovedCount);
        var ids = new List<string>();
        var payloads = new List<PointPayload?>();
        target.NodeOf.Clear();
        for (var node = 0; node < graph.Count; node++)
        {
            if (graph.IsRemoved(node))
                continue;
            var added = rebuilt.Add(graph.Vector(node));
            ids.Add(target.Ids[node]);
            payloads.Add(target.Payloads[node]);
            target.NodeOf[target.Ids[node]] = added;
        }
        logger.LogInformation("Compacted embedded index {Collection}: {Removed} removed points dropped, {Live} kept", collection, graph.RemovedCount, rebuilt.Count);
        target.Graph = rebuilt;
        target.Ids = ids;
        target.Payloads = payloads;
    }

    private EmbeddedCollection Require(string collection) => Open(collection) ?? throw new CollectionNotFoundException(collection);

    private EmbeddedCollection? Open(string collection)
    {
        var lazy = _open.GetOrAdd(collection, name => new Lazy<EmbeddedCollection?>(() => EmbeddedCollection.Load(PathOf(name))));
        if (lazy.Value is null)
            _open.TryRemove(new KeyValuePair<string, Lazy<EmbeddedCollection?>>(collection, lazy)); // not there yet: look again next time
        return lazy.Value;
    }

    private string PathOf(string collection) => Path.Combine(Folder, collection + Extension);
}

/// <summary>One collection's graph plus, per node, its id and payload (null once removed).</summary>
internal sealed class EmbeddedCollection(HnswGraph graph)
{
    private static readonly byte[] Magic = "ATHNSW"u8.ToArray();

    public HnswGraph Graph { get; set; } = graph;
    public List<string> Ids { get; set; } = [];
    public List<PointPayload?> Payloads { get; set; } = [];
    public Dictionary<string, int> NodeOf { get; } = new(StringComparer.Ordinal);
    public ReaderWriterLockSlim Lock { get; } = new();

    public void Save(string path)
    {
        var temp = path + ".tmp";
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
        using (var writer = new BinaryWriter(stream))
        {
            writer.Write(Magic);
            Graph.Write(writer);
            for (var node = 0; node < Graph.Count; node++)
            {
                writer.Write(Ids[node]);
                writer.Write(Payloads[node] is { } payload ? JsonSerializer.Serialize(payload) : "");
            }
            writer.Flush();
            stream.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: true);
    }

    public static EmbeddedCollection? Load(string path)
    {
        if (!File.Exists(path))
            return null;
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        using var reader = new BinaryReader(stream);
        if (!reader.ReadBytes(Magic.Length).AsSpan().SequenceEqual(Magic))
            throw new InvalidDataException($"'{path}' is not an AspireTune embedded index file.");
        var loaded = new EmbeddedCollection(HnswGraph.Read(reader));
        for (var node = 0; node < loaded.Graph.Count; node++)
        {
            var id = reader.ReadString();
            var json = reader.ReadString();
            loaded.Ids.Add(id);
            var payload = json.Length == 0 ? null : JsonSerializer.Deserialize<PointPayload>(json);
            loaded.Payloads.Add(payload);
            if (payload is not null && !loaded.Graph.IsRemoved(node))
                loaded.NodeOf[id] = node;
        }
        return loaded;
    }
}

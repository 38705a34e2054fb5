// Over 400 lines on purpose: one data structure (insert, search, remove, save/load) whose parts share the
// layer arrays and neighbour selection; splitting it would spread one invariant over several files.
using System.Numerics.Tensors;

namespace AspireTune.Retrieval.Index;

/// <summary>How two vectors are compared. Scores are "higher is more similar" for Cosine and Dot, and the L2 distance for Euclid.</summary>
public enum VectorDistance
{
    Cosine,
    Dot,
    Euclid,
}

/// <summary>
/// Hierarchical navigable small world graph (Malkov and Yashunin, 2016) over nodes numbered 0..Count-1.
/// Not thread-safe for writes: the caller holds one writer at a time; searches may run concurrently with each
/// other but not with a write. Removed nodes stay in the graph as waypoints and are filtered from results.
/// </summary>
internal sealed class HnswGraph
{
    private const int FileVersion = 1;
    private readonly int _m;
    private readonly int _m0;
    private readonly double _levelMultiplier;
    private readonly Random _random;
    private readonly System.Collections.Concurrent.ConcurrentBag<SearchScratch> _scratch = new();

    private float[] _vectors;
    private int[] _links0; // per node: [count, n0 .. n(m0-1)]
    private int[]?[] _upper; // per node with level > 0: level blocks of [count, n0 .. n(m-1)]
    private int[] _levels;
    private bool[] _removed;
    private int _entryPoint = -1;
    private int _maxLevel = -1;

    public HnswGraph(int dimensions, VectorDistance distance, int m = 16, int efConstruction = 200, int seed = 42, int initialCapacity = 1024)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dimensions, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(m, 2);
        Dimensions = dimensions;
        Distance = distance;
        _m = m;
        _m0 = 2 * m;
        EfConstruction = Math.Max(efConstruction, m);
        _levelMultiplier = 1 / Math.Log(m);
        _random = new Random(seed);
        initialCapacity = Math.Max(initialCapacity, 16);
        _vectors = new float[initialCapacity * dimensions];
        _links0 = new int[initialCapacity * (_m0 + 1)];
        _upper = new int[]?[initialCapacity];
        _levels = new int[initialCapacity];
        _removed = new bool[initialCapacity];
    }

    public int Dimensions { get; }
    public VectorDistance Distance { get; }
    public int M => _m;
    public int EfConstruction { get; }
    public int Count { get; private set; }
    public int RemovedCount { get; private set; }

    public ReadOnlySpan<float> Vector(int node) => new(_vectors, node * Dimensions, Dimensions);
    public bool IsRemoved(int node) => _removed[node];

    /// <summary>Appends a vector (normalised first for cosine) and links it into the graph; returns its node number.</summary>
    public int Add(ReadOnlySpan<float> vector)
    {
        if (vector.Length != Dimensions)
            throw new ArgumentException($"The vector has {vector.Length} dimensions; the index holds {Dimensions}.", nameof(vector));
        EnsureCapacity(Count + 1);
        var node = Count;
        var target = _vectors.AsSpan(node * Dimensions, Dimensions);
        vector.CopyTo(target);
        if (Distance == VectorDistance.Cosine)
        {
            var norm = TensorPrimitives.Norm(target);
            if (norm > 0)
                TensorPrimitives.Divide(target, norm, target);
        }
        var level = (int)(-Math.Log(1 - _random.NextDouble()) * _levelMultiplier);
        _levels[node] = level;
        _upper[node] = level > 0 ? new int[level * (_m + 1)] : null;
        Count++;
        Link(node, level);
        return node;
    }

    /// <summary>Marks a node removed: it keeps routing searches but is never returned.</summary>
    public void Remove(int node)
    {
        if (!_removed[node])
        {
            _removed[node] = true;
            RemovedCount++;
        }
    }

    /// <summary>Approximate k nearest live nodes (best first). <paramref name="ef"/> is the beam width (at least k).</summary>
    public List<(int Node, float Distance)> Search(ReadOnlySpan<float> query, int k, int ef)
    {
        var results = new List<(int, float)>(k);
        if (_entryPoint < 0 || k <= 0)
            return results;
        var q = Prepare(query, out var rented);
        try
        {
            var current = _entryPoint;
            var currentDistance = DistanceTo(q, current);
            for (var level = _maxLevel; level > 0; level--)
                GreedyDescend(q, ref current, ref currentDistance, level);

            var scratch = Rent();
            try
            {
                SearchLayer(q, current, currentDistance, Math.Max(ef, k), 0, scratch);
                var best = scratch.Results;
                // The max-heap pops worst first: drain into an array and read it backwards.
                var drained = new (int Node, float Distance)[best.Count];
                for (var i = drained.Length - 1; i >= 0; i--)
                    drained[i] = best.Pop();
                foreach (var item in drained)
                {
                    if (_removed[item.Node])
                        continue;
                    results.Add(item);
                    if (results.Count == k)
                        break;
                }
            }
            finally
            {
                _scratch.Add(scratch);
            }
        }
        finally
        {
            if (rented is not null)
                System.Buffers.ArrayPool<float>.Shared.Return(rented);
        }
        return results;
    }

    /// <summary>Exact k nearest live nodes that pass <paramref name="accept"/> (best first), by a full scan.</summary>
    public List<(int Node, float Distance)> SearchExact(ReadOnlySpan<float> query, int k, Func<int, bool>? accept = null)
    {
        var q = Prepare(query, out var rented);
        try
        {
            var heap = new DistanceHeap(k + 1, max: true);
            for (var node = 0; node < Count; node++)
            {
                if (_removed[node] || (accept is not null && !accept(node)))
                    continue;
                var d = DistanceTo(q, node);
                if (heap.Count < k)
                    heap.Push(node, d);
                else if (d < heap.PeekDistance)
                {
                    heap.Pop();
                    heap.Push(node, d);
                }
            }
            var results = new (int Node, float Distance)[heap.Count];
            for (var i = results.Length - 1; i >= 0; i--)
                results[i] = heap.Pop();
            return [.. results];
        }
        finally
        {
            if (rented is not null)
                System.Buffers.ArrayPool<float>.Shared.Return(rented);
        }
    }

    /// <summary>The similarity score reported for an internal distance (cosine similarity, dot product, or L2 distance).</summary>
    public float Score(float distance) => Distance switch
    {
        VectorDistance.Cosine => 1 - distance,
        VectorDistance.Dot => -distance,
        _ => distance,
    };

    private ReadOnlySpan<float> Prepare(ReadOnlySpan<float> query, out float[]? rented)
    {
        if (query.Length != Dimensions)
            throw new ArgumentException($"The query has {query.Length} dimensions; the index holds {Dimensions}.", nameof(query));
        rented = null;
        if (Distance != VectorDistance.Cosine)
            return query;
        var norm = TensorPrimitives.Norm(query);
        if (norm is 0 or 1)
            return query;
        rented = System.Buffers.ArrayPool<float>.Shared.Rent(Dimensions);
        var span = rented.AsSpan(0, Dimensions);
        TensorPrimitives.Divide(query, norm, span);
        return span;
    }

    private float DistanceTo(ReadOnlySpan<float> q, int node) => Distance switch
    {
        VectorDistance.Cosine => 1 - TensorPrimitives.Dot(q, new ReadOnlySpan<float>(_vectors, node * Dimensions, Dimensions)),
        VectorDistance.Dot => -TensorPrimitives.Dot(q, new ReadOnlySpan<float>(_vectors, node * Dimensions, Dimensions)),
        _ => TensorPrimitives.Distance(q, new ReadOnlySpan<float>(_vectors, node * Dimensions, Dimensions)),
    };

    private float DistanceBetween(int a, int b) => DistanceTo(new ReadOnlySpan<float>(_vectors, a * Dimensions, Dimensions), b);

    private Span<int> Links(int node, int level) => level == 0
        ? _links0.AsSpan(node * (_m0 + 1), _m0 + 1)
        : _upper[node]!.AsSpan((level - 1) * (_m + 1), _m + 1);

    private void GreedyDescend(ReadOnlySpan<float> q, ref int current, ref float currentDistance, int level)
    {
        var changed = true;
        while (changed)
        {
            changed = false;
            var links = Links(current, level);
            var count = links[0];
            for (var i = 1; i <= count; i++)
            {
                var candidate = links[i];
                var d = DistanceTo(q, candidate);
                if (d < currentDistance)
                {
                    currentDistance = d;
                    current = candidate;
                    changed = true;
                }
            }
        }
    }

    /// <summary>Beam search on one layer; leaves the ef best in <c>scratch.Results</c> (a max-heap).</summary>
    private void SearchLayer(ReadOnlySpan<float> q, int entry, float entryDistance, int ef, int level, SearchScratch scratch)
    {
        scratch.Prepare(Count, ef);
        var visited = scratch.Visited;
        var tag = scratch.Tag;
        var candidates = scratch.Candidates;
        var results = scratch.Results;
        visited[entry] = tag;
        candidates.Push(entry, entryDistance);
        results.Push(entry, entryDistance);
        while (candidates.Count > 0)
        {
            var (node, distance) = candidates.Pop();
            if (distance > results.PeekDistance && results.Count >= ef)
                break;
            var links = Links(node, level);
            var count = links[0];
            for (var i = 1; i <= count; i++)
            {
                var neighbor = links[i];
                if (visited[neighbor] == tag)
                    continue;
                visited[neighbor] = tag;
                var d = DistanceTo(q, neighbor);
                if (results.Count < ef || d < results.PeekDistance)
                {
                    candidates.Push(neighbor, d);
                    results.Push(neighbor, d);
                    if (results.Count > ef)
                        results.Pop();
                }
            }
        }
    }

    private void Link(int node, int level)
    {
        if (_entryPoint < 0)
        {
            _entryPoint = node;
            _maxLevel = level;
            return;
        }
        var q = Vector(node);
        var current = _entryPoint;
        var currentDistance = DistanceTo(q, current);
        for (var l = _maxLevel; l > level; l--)
            GreedyDescend(q, ref current, ref currentDistance, l);

        var scratch = Rent();
        try
        {
            for (var l = Math.Min(level, _maxLevel); l >= 0; l--)
            {
                SearchLayer(q, current, currentDistance, EfConstruction, l, scratch);
                var found = new (int Node, float Distance)[scratch.Results.Count];
                for (var i = found.Length - 1; i >= 0; i--)
                    found[i] = scratch.Results.Pop();
                var selected = SelectNeighbors(found, _m);
                var own = Links(node, l);
                own[0] = selected.Count;
                for (var i = 0; i < selected.Count; i++)
                    own[i + 1] = selected[i];
                foreach (var neighbor in selected)
                    Connect(neighbor, node, l);
                current = found[0].Node;
                currentDistance = found[0].Distance;
            }
        }
        finally
        {
            _scratch.Add(scratch);
        }
        if (level > _maxLevel)
        {
            _entryPoint = node;
            _maxLevel = level;
        }
    }

    /// <summary>Adds a back link; when the list is full, keeps a diverse subset by the same heuristic.</summary>
    private void Connect(int from, int to, int level)
    {
        var links = Links(from, level);
        var capacity = level == 0 ? _m0 : _m;
        var count = links[0];
        if (count < capacity)
        {
            links[count + 1] = to;
            links[0] = count + 1;
            return;
        }
        var candidates = new (int Node, float Distance)[count + 1];
        for (var i = 0; i < count; i++)
            candidates[i] = (links[i + 1], DistanceBetween(from, links[i + 1]));
        candidates[count] = (to, DistanceBetween(from, to));
        Array.Sort(candidates, (a, b) => a.Distance.CompareTo(b.Distance));
        var kept = SelectNeighbors(candidates, capacity);
        links[0] = kept.Count;
        for (var i = 0; i < kept.Count; i++)
            links[i + 1] = kept[i];
    }

    /// <summary>
    /// The paper's heuristic: walk candidates nearest first and keep one only when it is closer to the base than
    /// to every neighbour kept so far, so links spread in directions instead of clustering.
    /// </summary>
    private List<int> SelectNeighbors((int Node, float Distance)[] sortedCandidates, int max)
    {
        var selected = new List<int>(max);
        if (sortedCandidates.Length <= max)
        {
            foreach (var c in sortedCandidates)
                selected.Add(c.Node);
            return selected;
        }
        foreach (var (candidate, distance) in sortedCandidates)
        {
            if (selected.Count >= max)
                break;
            var keep = true;
            foreach (var s in selected)
            {
                if (DistanceBetween(candidate, s) < distance)
                {
                    keep = false;
                    break;
                }
            }
            if (keep)
                selected.Add(candidate);
        }
        return selected;
    }

    private SearchScratch Rent() => _scratch.TryTake(out var scratch) ? scratch : new SearchScratch();

    private void EnsureCapacity(int needed)
    {
        var capacity = _levels.Length;
        if (needed <= capacity)
            return;
        var next = Math.Max(needed, capacity * 2);
        Array.Resize(ref _vectors, next * Dimensions);
        Array.Resize(ref _links0, next * (_m0 + 1));
        Array.Resize(ref _upper, next);
        Array.Resize(ref _levels, next);
        Array.Resize(ref _removed, next);
    }

    public void Write(BinaryWriter writer)
    {
        writer.Write(FileVersion);
        writer.Write(Dimensions);
        writer.Write((int)Distance);
        writer.Write(_m);
        writer.Write(EfConstruction);
        writer.Write(Count);
        writer.Write(_entryPoint);
        writer.Write(_maxLevel);
        writer.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(_vectors.AsSpan(0, Count * Dimensions)));
        writer.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(_links0.AsSpan(0, Count * (_m0 + 1))));
        for (var node = 0; node < Count; node++)
        {
            writer.Write(_levels[node]);
            writer.Write(_removed[node]);
            if (_upper[node] is { } upper)
                writer.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(upper.AsSpan()));
        }
    }

    public static HnswGraph Read(BinaryReader reader)
    {
        var version = reader.ReadInt32();
        if (version != FileVersion)
            throw new InvalidDataException($"Index file version {version} is not supported (expected {FileVersion}).");
        var dimensions = reader.ReadInt32();
        var distance = (VectorDistance)reader.ReadInt32();
        var m = reader.ReadInt32();
        var efConstruction = reader.ReadInt32();
        var count = reader.ReadInt32();
        var graph = new HnswGraph(dimensions, distance, m, efConstruction, seed: count, initialCapacity: Math.Max(count, 16))
        {
            _entryPoint = reader.ReadInt32(),
            _maxLevel = reader.ReadInt32(),
        };
        ReadExactly(reader, System.Runtime.InteropServices.MemoryMarshal.AsBytes(graph._vectors.AsSpan(0, count * dimensions)));
        ReadExactly(reader, System.Runtime.InteropServices.MemoryMarshal.AsBytes(graph._links0.AsSpan(0, count * (graph._m0 + 1))));
        for (var node = 0; node < count; node++)
        {
            var level = reader.ReadInt32();
            graph._levels[node] = level;
            if (reader.ReadBoolean())
            {
                graph._removed[node] = true;
                graph.RemovedCount++;
            }
            if (level > 0)
            {
                var upper = new int[level * (m + 1)];
                ReadExactly(reader, System.Runtime.InteropServices.MemoryMarshal.AsBytes(upper.AsSpan()));
                graph._upper[node] = upper;
            }
        }
        graph.Count = count;
        return graph;
    }

    private static void ReadExactly(BinaryReader reader, Span<byte> target) => reader.BaseStream.ReadExactly(target);

    /// <summary>Per-search buffers, pooled so a query allocates almost nothing.</summary>
    private sealed class SearchScratch
    {
        public int[] Visited = new int[1024];
        public int Tag;
        public DistanceHeap Candidates = new(64, max: false);
        public DistanceHeap Results = new(64, max: true);

        public void Prepare(int nodes, int ef)
        {
            if (Visited.Length < nodes)
            {
                Visited = new int[Math.Max(nodes, Visited.Length * 2)];
                Tag = 0;
            }
            if (++Tag == int.MaxValue)
            {
                Array.Clear(Visited);
                Tag = 1;
            }
            Candidates.Clear();
            Results.Clear();
            Candidates.EnsureCapacity(ef * 4);
            Results.EnsureCapacity(ef + 2);
        }
    }
}

/// <summary>A binary heap of (node, distance); a max-heap stores negated keys in the same min-heap code.</summary>
internal sealed class DistanceHeap(int capacity, bool max)
{
    private float[] _keys = new float[Math.Max(capacity, 4)];
    private int[] _nodes = new int[Math.Max(capacity, 4)];
    private readonly float _sign = max ? -1f : 1f;

    public int Count { get; private set; }

    public float PeekDistance => _keys[0] * _sign;

    public void Clear() => Count = 0;

    public void EnsureCapacity(int capacity)
    {
        if (_keys.Length >= capacity)
            return;
        Array.Resize(ref _keys, capacity);
        Array.Resize(ref _nodes, capacity);
    }

    public void Push(int node, float distance)
    {
        if (Count == _keys.Length)
            EnsureCapacity(Count * 2);
        var key = distance * _sign;
        var i = Count++;
        while (i > 0)
        {
            var parent = (i - 1) >> 1;
            if (_keys[parent] <= key)
                break;
            _keys[i] = _keys[parent];
            _nodes[i] = _nodes[parent];
            i = parent;
        }
        _keys[i] = key;
        _nodes[i] = node;
    }

    public (int Node, float Distance) Pop()
    {
        var top = (_nodes[0], _keys[0] * _sign);
        var last = --Count;
        if (last > 0)
        {
            var key = _keys[last];
            var node = _nodes[last];
            var i = 0;
            while (true)
            {
                var child = 2 * i + 1;
                if (child >= last)
                    break;
                if (child + 1 < last && _keys[child + 1] < _keys[child])
                    child++;
                if (_keys[child] >= key)
                    break;
                _keys[i] = _keys[child];
                _nodes[i] = _nodes[child];
                i = child;
            }
            _keys[i] = key;
            _nodes[i] = node;
        }
        return top;
    }
}

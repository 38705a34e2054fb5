using static TorchSharp.torch;

namespace AspireTune.Engine.Models;

/// <summary>
/// One fixed pool of key/value rows that the sequences decoding together share, handed out in blocks of
/// <see cref="BlockSize"/> positions (a block table per sequence, as in vLLM's paged attention). Allocated once, so
/// the cache can never grow past its budget: a sequence that does not fit waits for blocks to be released.
/// Row <see cref="ScratchRow"/> takes the writes of padded positions.
/// </summary>
internal sealed class PagedKvCache : IDisposable
{
    private readonly Tensor[] _keys;
    private readonly Tensor[] _values;
    private readonly Stack<int> _free = new();

    public PagedKvCache(ModelConfig config, int capacityTokens, int blockSize, ScalarType dtype, Device device)
    {
        if (blockSize < 1) throw new ArgumentOutOfRangeException(nameof(blockSize), "the block size must be at least 1");
        BlockSize = blockSize;
        Blocks = Math.Max(1, capacityTokens / blockSize);
        var width = config.KvHeads * config.HeadSize;
        _keys = new Tensor[config.NumLayers];
        _values = new Tensor[config.NumLayers];
        for (var l = 0; l < config.NumLayers; l++)
        {
            _keys[l] = zeros([Blocks * (long)blockSize + 1, width], dtype, device).DetachFromDisposeScope();
            _values[l] = zeros([Blocks * (long)blockSize + 1, width], dtype, device).DetachFromDisposeScope();
        }
        for (var b = Blocks - 1; b >= 0; b--) _free.Push(b);
    }

    public int BlockSize { get; }

    /// <summary>Blocks in the pool.</summary>
    public int Blocks { get; }

    /// <summary>Positions the pool holds in all.</summary>
    public int CapacityTokens => Blocks * BlockSize;

    public int FreeBlocks => _free.Count;

    public long ScratchRow => (long)Blocks * BlockSize;

    public int BlocksFor(int tokens) => (tokens + BlockSize - 1) / BlockSize;

    /// <summary>A block table for <paramref name="tokens"/> positions, or null when too few blocks are free.</summary>
    public int[]? Allocate(int tokens)
    {
        var n = BlocksFor(tokens);
        if (n > _free.Count) return null;
        var table = new int[n];
        for (var i = 0; i < n; i++) table[i] = _free.Pop();
        return table;
    }

    public void Release(int[] table)
    {
        foreach (var b in table) _free.Push(b);
    }

    /// <summary>The pool row of position <paramref name="position"/> of the sequence with this block table.</summary>
    public long Row(int[] table, int position) => (long)table[position / BlockSize] * BlockSize + position % BlockSize;

    internal Tensor Keys(int layer) => _keys[layer];
    internal Tensor Values(int layer) => _values[layer];

    public void Dispose()
    {
        foreach (var t in _keys) t.Dispose();
        foreach (var t in _values) t.Dispose();
    }
}

/// <summary>
/// One forward pass of a batch over a <see cref="PagedKvCache"/>: the new positions' keys and values go to
/// <paramref name="writeRows"/> [B * T]; with <paramref name="gatherRows"/> [B * S] every sequence then attends to its
/// S rows (padded ones masked by the caller), without them (a prefill from position 0) to the new keys alone.
/// </summary>
internal sealed class PagedBatch(PagedKvCache cache, Tensor writeRows, Tensor? gatherRows, int keys, int past) : IKvStore
{
    public int Length => past;

    public (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v)
    {
        long b = k.shape[0], h = k.shape[1], t = k.shape[2], d = k.shape[3];
        var pk = cache.Keys(layer);
        var pv = cache.Values(layer);
        pk.index_copy_(0, writeRows, k.transpose(1, 2).reshape(b * t, h * d).to(pk.dtype));
        pv.index_copy_(0, writeRows, v.transpose(1, 2).reshape(b * t, h * d).to(pv.dtype));
        if (gatherRows is null) return (k, v);
        return (pk.index_select(0, gatherRows).view(b, keys, h, d).transpose(1, 2).to(k.dtype),
            pv.index_select(0, gatherRows).view(b, keys, h, d).transpose(1, 2).to(v.dtype));
    }
}

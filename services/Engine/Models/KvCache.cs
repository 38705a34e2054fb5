using static TorchSharp.torch;

namespace AspireTune.Engine.Models;

/// <summary>Keys and values of the positions already processed, one pair per layer, for incremental decoding.</summary>
public sealed class KvCache : IDisposable
{
    private readonly Tensor?[] _keys;
    private readonly Tensor?[] _values;

    public KvCache(int layers)
    {
        _keys = new Tensor?[layers];
        _values = new Tensor?[layers];
    }

    /// <summary>How many positions the cache holds.</summary>
    public int Length { get; private set; }

    internal (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v)
    {
        var oldK = _keys[layer];
        var oldV = _values[layer];
        var nk = oldK is null ? k.alias() : cat([oldK, k], 2);
        var nv = oldV is null ? v.alias() : cat([oldV, v], 2);
        // The cache outlives the dispose scope of the step that produced it.
        _keys[layer] = nk.detach().DetachFromDisposeScope();
        _values[layer] = nv.detach().DetachFromDisposeScope();
        oldK?.Dispose();
        oldV?.Dispose();
        if (layer == _keys.Length - 1) Length = (int)_keys[layer]!.shape[2];
        return (_keys[layer]!, _values[layer]!);
    }

    public void Dispose()
    {
        foreach (var t in _keys) t?.Dispose();
        foreach (var t in _values) t?.Dispose();
        Array.Clear(_keys);
        Array.Clear(_values);
        Length = 0;
    }
}

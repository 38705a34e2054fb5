using static TorchSharp.torch;

namespace AspireTune.Engine.Models;

/// <summary>Where attention layers put the keys and values of new positions and read those of all positions.</summary>
internal interface IKvStore
{
    /// <summary>Positions held before this forward pass (the longest sequence's, in a batch).</summary>
    int Length { get; }

    /// <summary>Stores keys/values [B, Hkv, T, D] of layer <paramref name="layer"/>; returns the ones to attend to.</summary>
    (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v);
}

/// <summary>Keys and values of the positions already processed, one pair per layer, for incremental decoding.</summary>
public sealed class KvCache : IKvStore, IDisposable
{
    private readonly Tensor?[] _keys;
    private readonly Tensor?[] _values;

    public KvCache(int layers)
    {
        _keys = new Tensor?[layers];
        _values = new Tensor?[layers];
    }

    /// <summary>Keys [1, Hkv, Length, D] of a layer, or null before the first pass.</summary>
    internal Tensor? Keys(int layer) => _keys[layer];

    internal Tensor? Values(int layer) => _values[layer];

    /// <summary>How many positions the cache holds.</summary>
    public int Length { get; private set; }

    (Tensor Keys, Tensor Values) IKvStore.Append(int layer, Tensor k, Tensor v)
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

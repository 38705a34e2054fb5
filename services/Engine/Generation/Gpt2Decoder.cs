using AspireTune.Engine.Kernels;
using AspireTune.Engine.Models;
using static TorchSharp.torch;

namespace AspireTune.Engine.Generation;

/// <summary>
/// Batch-1 decode steps of a GPT-2 model in fp32 on CUDA with the engine's kernels: per layer the four matmuls
/// through libtorch (cuBLAS) and, between them, one launch each for attention over a preallocated cache (the new
/// key and value written in place), residual add + layer norm, and GELU; the greedy pick on the device, so a token
/// costs one copy to the host. About 110 calls a token instead of about 400 TorchSharp calls, which bound the
/// plain path by the host (3.7 ms a token for GPT-2 small on an H200). <see cref="TryCreate"/> is null wherever it
/// does not apply (CPU, bf16 matmuls, LoRA attached, other families, kernels off); callers then use the plain path.
/// </summary>
internal sealed class Gpt2Decoder : IDisposable
{
    private readonly EngineKernels _kernels;
    private readonly Gpt2Network _net;
    private readonly int _hidden, _heads, _dim, _maxPositions, _vocab, _layers;
    private readonly float _eps, _scale;
    private readonly Tensor _x, _xn, _o, _result, _id;
    private readonly IntPtr _xPtr, _xnPtr, _oPtr, _resultPtr, _idPtr, _wtePtr, _wpePtr;
    private readonly (IntPtr Gamma, IntPtr Beta)[] _norms; // ln_1 and ln_2 of every block, then ln_f
    private Tensor[]? _keys, _values; // batch 1: [heads, positions, head dim] per layer, allocated by Load
    private IntPtr[] _keyPtrs = [], _valuePtrs = [];
    private long _idOnDevice = -1;

    private Gpt2Decoder(EngineKernels kernels, Gpt2Network net, ModelConfig c)
    {
        _kernels = kernels;
        _net = net;
        (_hidden, _heads, _dim, _maxPositions, _vocab, _layers) = (c.HiddenSize, c.NumHeads, c.HeadSize, c.MaxPositions, c.VocabSize, c.NumLayers);
        _eps = (float)c.NormEpsilon;
        _scale = 1f / MathF.Sqrt(_dim);
        var device = net.transformer.wte.weight.device;
        _x = zeros([1, _hidden], ScalarType.Float32, device).DetachFromDisposeScope();
        _xn = zeros([1, _hidden], ScalarType.Float32, device).DetachFromDisposeScope();
        _o = zeros([1, _hidden], ScalarType.Float32, device).DetachFromDisposeScope();
        _result = zeros([2], ScalarType.Float64, device).DetachFromDisposeScope();
        _id = zeros([1], ScalarType.Int64, device).DetachFromDisposeScope();
        (_xPtr, _xnPtr, _oPtr, _resultPtr, _idPtr) = (EngineKernels.Ptr(_x), EngineKernels.Ptr(_xn), EngineKernels.Ptr(_o), EngineKernels.Ptr(_result), EngineKernels.Ptr(_id));
        _wtePtr = EngineKernels.Ptr(net.transformer.wte.weight);
        _wpePtr = EngineKernels.Ptr(net.transformer.wpe.weight);
        _norms = [.. net.transformer.h.SelectMany(b => new[] { b.ln_1, b.ln_2 }).Append(net.transformer.ln_f)
            .Select(n => (EngineKernels.Ptr(n.weight), EngineKernels.Ptr(n.bias)))];
    }

    /// <summary>The decoder for <paramref name="model"/>, or null where it does not apply.</summary>
    public static Gpt2Decoder? TryCreate(CausalLm model)
    {
        if (model.Network is not Gpt2Network net || model.Kernels is not { HasDecode: true } kernels || net.Settings.MatmulDType is not null)
            return null;
        var c = model.Config;
        if (!c.TieWordEmbeddings || net.Projections().Any(p => p.Item2.lora_A is not null) || DecodeAttentionThreadsNotMultipleOf(c.HeadSize)
            || EngineKernels.DecodeAttentionSharedBytes(c.HeadSize, c.MaxPositions) > 48 * 1024 || c.HiddenSize * sizeof(float) > 48 * 1024)
            return null;
        if (net.parameters().Any(p => p.dtype != ScalarType.Float32 || !p.is_contiguous()))
            return null;
        return new Gpt2Decoder(kernels, net, c);
    }

    private static bool DecodeAttentionThreadsNotMultipleOf(int dim) => dim > EngineKernels.DecodeAttentionThreads || EngineKernels.DecodeAttentionThreads % dim != 0;

    /// <summary>Batch 1: takes over the keys and values a plain prefill left in <paramref name="cache"/>.</summary>
    public void Load(KvCache cache)
    {
        if (_keys is null)
        {
            var device = _x.device;
            _keys = [.. Enumerable.Range(0, _layers).Select(_ => zeros([_heads, _maxPositions, _dim], ScalarType.Float32, device).DetachFromDisposeScope())];
            _values = [.. Enumerable.Range(0, _layers).Select(_ => zeros([_heads, _maxPositions, _dim], ScalarType.Float32, device).DetachFromDisposeScope())];
            _keyPtrs = [.. _keys.Select(EngineKernels.Ptr)];
            _valuePtrs = [.. _values.Select(EngineKernels.Ptr)];
        }
        for (var l = 0; l < _layers; l++)
        {
            var k = cache.Keys(l)!;
            var v = cache.Values(l)!;
            using var kd = _keys[l].narrow(1, 0, k.shape[2]);
            using var vd = _values![l].narrow(1, 0, v.shape[2]);
            kd.copy_(k[0]);
            vd.copy_(v[0]);
        }
    }

    /// <summary>Batch 1: float32 logits [V] after <paramref name="token"/> at <paramref name="position"/> (inside a dispose scope, no grad).</summary>
    public Tensor Logits(int token, long position)
    {
        if (_keys is null) throw new InvalidOperationException("Load the prefill's cache first");
        if (position >= _maxPositions) throw new ArgumentException($"position {position} is past the model's {_maxPositions} positions");
        if (_idOnDevice != token)
        {
            _id.fill_(token);
            _idOnDevice = token;
        }
        _kernels.DecodeAddLayerNorm(_wtePtr, _wpePtr, _xPtr, _xnPtr, _norms[0].Gamma, _norms[0].Beta, _hidden, _eps, _idPtr, IntPtr.Zero, position);
        var logits = Blocks(_xPtr, _xn, _oPtr, _o, 1, (l, qkv) =>
            _kernels.DecodeAttention(qkv, _keyPtrs[l], _valuePtrs[l], _oPtr, _heads, _dim, _maxPositions, position, _scale));
        return logits.view(_vocab);
    }

    /// <summary>Batch 1: the greedy next token and its log-probability, picked on the device (one copy to the host).</summary>
    public (int Id, double Logprob) Greedy(int token, long position)
    {
        var logits = Logits(token, position);
        _kernels.DecodeGreedy(EngineKernels.Ptr(logits), _vocab, _resultPtr, _idPtr);
        var host = _result.cpu().data<double>().ToArray();
        _idOnDevice = (long)host[0];
        return ((int)host[0], host[1]);
    }

    /// <summary>
    /// One step of <paramref name="batch"/> sequences over a paged cache: <paramref name="packed"/> holds, as int64 on the
    /// device, the input ids [B], positions [B], the pool rows written [B] and the rows each attends to [B x keys]
    /// (the layout <see cref="BatchedGenerator"/> uploads). Returns float32 logits [B, V].
    /// </summary>
    public Tensor BatchLogits(Tensor packed, int batch, int keys, PagedKvCache cache)
    {
        var device = _x.device;
        var x = empty([batch, _hidden], ScalarType.Float32, device);
        var xn = empty([batch, _hidden], ScalarType.Float32, device);
        var o = empty([batch, _hidden], ScalarType.Float32, device);
        IntPtr xPtr = EngineKernels.Ptr(x), oPtr = EngineKernels.Ptr(o), ids = EngineKernels.Ptr(packed);
        IntPtr positions = ids + 8 * batch, writeRows = ids + 16 * batch, gatherRows = ids + 24 * batch;
        _kernels.DecodeAddLayerNorm(_wtePtr, _wpePtr, xPtr, EngineKernels.Ptr(xn), _norms[0].Gamma, _norms[0].Beta, _hidden, _eps, ids, positions, 0, batch);
        return Blocks(xPtr, xn, oPtr, o, batch, (l, qkv) =>
            _kernels.DecodeAttentionPaged(qkv, EngineKernels.Ptr(cache.Keys(l)), EngineKernels.Ptr(cache.Values(l)), oPtr, writeRows, gatherRows, positions,
                _heads, _dim, keys, _scale, batch));
    }

    /// <summary>The greedy pick of every row of float32 logits [rows, V]: ids and log-probabilities, one copy to the host.</summary>
    public (int Id, double Logprob)[] BatchGreedy(Tensor logits, int rows)
    {
        var device = _x.device;
        var result = empty([rows, 2], ScalarType.Float64, device);
        var next = empty([rows], ScalarType.Int64, device);
        _kernels.DecodeGreedy(EngineKernels.Ptr(logits), _vocab, EngineKernels.Ptr(result), EngineKernels.Ptr(next), rows);
        var host = result.cpu().data<double>().ToArray();
        return [.. Enumerable.Range(0, rows).Select(i => ((int)host[2 * i], host[2 * i + 1]))];
    }

    /// <summary>The blocks over rows whose input is in x (and its ln_1 in xn), then the head: logits [rows, V].</summary>
    private Tensor Blocks(IntPtr x, Tensor xn, IntPtr oPtr, Tensor o, int rows, Action<int, IntPtr> attend)
    {
        var xnPtr = EngineKernels.Ptr(xn);
        var blocks = _net.transformer.h;
        for (var l = 0; l < blocks.Count; l++)
        {
            var b = blocks[l];
            var qkv = addmm(b.attn.c_attn.bias!, xn, b.attn.c_attn.weight, 1, 1);
            attend(l, EngineKernels.Ptr(qkv));
            var a = addmm(b.attn.c_proj.bias!, o, b.attn.c_proj.weight, 1, 1);
            _kernels.DecodeAddLayerNorm(x, EngineKernels.Ptr(a), x, xnPtr, _norms[2 * l + 1].Gamma, _norms[2 * l + 1].Beta, _hidden, _eps, IntPtr.Zero, IntPtr.Zero, 0, rows);
            var f = addmm(b.mlp.c_fc.bias!, xn, b.mlp.c_fc.weight, 1, 1);
            _kernels.DecodeGelu(EngineKernels.Ptr(f), (int)f.numel());
            var m = addmm(b.mlp.c_proj.bias!, f, b.mlp.c_proj.weight, 1, 1);
            // The next block's ln_1, or ln_f after the last block.
            var next = _norms[2 * l + 2];
            _kernels.DecodeAddLayerNorm(x, EngineKernels.Ptr(m), x, xnPtr, next.Gamma, next.Beta, _hidden, _eps, IntPtr.Zero, IntPtr.Zero, 0, rows);
        }
        return xn.matmul(_net.transformer.wte.weight.t());
    }

    public void Dispose()
    {
        foreach (var t in (_keys ?? []).Concat(_values ?? [])) t.Dispose();
        foreach (var t in new[] { _x, _xn, _o, _result, _id }) t.Dispose();
    }
}

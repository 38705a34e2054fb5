using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace AspireTune.Engine.Models;

/// <summary>Settings shared by every layer of one model while it runs.</summary>
internal sealed class RunSettings
{
    /// <summary>Matmul dtype; bfloat16 on GPU keeps fp32 master weights and casts at the matmul, like autocast.</summary>
    public ScalarType? MatmulDType { get; set; }
    public double EmbeddingDropout { get; set; }
    public double AttentionDropout { get; set; }
    public double ResidualDropout { get; set; }
    public double LoraDropout { get; set; }
}

/// <summary>
/// A dense projection, stored either as torch Linear ([out, in], Llama) or as GPT-2's Conv1D ([in, out]),
/// with an optional LoRA adapter (A [r, in], B [out, r]) that can be merged into the weight.
/// </summary>
internal sealed class Projection : nn.Module<Tensor, Tensor>
{
    private readonly RunSettings _run;
    public readonly bool Conv1D;
    public readonly int In;
    public readonly int Out;
    public Parameter weight;
    public Parameter? bias;
    public Parameter? lora_A;
    public Parameter? lora_B;
    public double LoraScale { get; private set; }

    // A frozen weight (LoRA training, serving) in the matmul dtype, cast once instead of at every forward.
    private Tensor? _frozenCast;

    public Projection(string name, int inFeatures, int outFeatures, bool withBias, bool conv1D, RunSettings run) : base(name)
    {
        _run = run;
        Conv1D = conv1D;
        In = inFeatures;
        Out = outFeatures;
        weight = new Parameter(conv1D ? empty(inFeatures, outFeatures) : empty(outFeatures, inFeatures));
        register_parameter("weight", weight);
        if (withBias)
        {
            bias = new Parameter(zeros(outFeatures));
            register_parameter("bias", bias);
        }
    }

    public void AddLora(int rank, double alpha)
    {
        lora_A = new Parameter(empty(rank, In, device: weight.device));
        lora_B = new Parameter(zeros(Out, rank, device: weight.device));
        using (no_grad())
            nn.init.kaiming_uniform_(lora_A, Math.Sqrt(5));
        register_parameter("lora_A", lora_A);
        register_parameter("lora_B", lora_B);
        LoraScale = alpha / rank;
    }

    /// <summary>Folds the adapter into the base weight; the adapter stays registered but contributes zero.</summary>
    public void MergeLora()
    {
        if (lora_A is null || lora_B is null) return;
        using (no_grad())
        {
            using var delta = matmul(lora_B, lora_A).mul_(LoraScale);
            if (Conv1D) weight.add_(delta.t()); else weight.add_(delta);
        }
        using (no_grad()) lora_B.zero_();
        DropFrozenCast();
    }

    /// <summary>Forgets the cached cast of a frozen weight (after its values changed).</summary>
    public void DropFrozenCast()
    {
        _frozenCast?.Dispose();
        _frozenCast = null;
    }

    private Tensor CastWeight(ScalarType dtype)
    {
        if (weight.requires_grad || weight.dtype == dtype)
        {
            DropFrozenCast();
            return weight.to(dtype);
        }
        if (_frozenCast is null || _frozenCast.dtype != dtype)
        {
            DropFrozenCast();
            using (no_grad()) _frozenCast = weight.detach().to(dtype).DetachFromDisposeScope();
        }
        return _frozenCast.alias();
    }

    public override Tensor forward(Tensor x)
    {
        var dt = _run.MatmulDType;
        var xin = dt is { } d && x.dtype != d ? x.to(d) : x;
        var w = dt is { } d2 ? CastWeight(d2) : (Tensor)weight;
        var b = bias is null ? null : dt is { } d3 ? bias.to(d3) : (Tensor)bias;
        Tensor y;
        if (Conv1D)
        {
            var flat = xin.reshape(-1, In);
            y = (b is null ? flat.matmul(w) : addmm(b, flat, w, 1, 1)).view([.. x.shape[..^1], Out]);
        }
        else
        {
            y = F.linear(xin, w, b);
        }
        if (lora_A is not null && lora_B is not null)
        {
            var la = dt is { } d4 ? lora_A.to(d4) : (Tensor)lora_A;
            // The scale goes on the [out, r] factor, not on the [tokens, out] product, and addmm adds the
            // adapter's product to the base output inside the GEMM.
            var lb = lora_B.mul(LoraScale);
            if (dt is { } d5) lb = lb.to(d5);
            var h = _run.LoraDropout > 0 && training ? F.dropout(xin, _run.LoraDropout, true) : xin;
            var down = F.linear(h, la);
            y = addmm(y.reshape(-1, Out), down.reshape(-1, down.shape[^1]), lb.t(), 1, 1).view(y.shape);
        }
        return y;
    }
}

internal sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly double _eps;
    public Parameter weight;

    public RmsNorm(string name, int size, double eps) : base(name)
    {
        _eps = eps;
        weight = new Parameter(ones(size));
        register_parameter("weight", weight);
    }

    public override Tensor forward(Tensor x)
    {
        // Computed in fp32 whatever the input dtype, as transformers does.
        var h = x.dtype == ScalarType.Float32 ? x : x.to(ScalarType.Float32);
        var variance = h.pow(2).mean([-1], keepdim: true);
        return weight * (h * rsqrt(variance + _eps));
    }
}

internal sealed class LayerNorm : nn.Module<Tensor, Tensor>
{
    private readonly double _eps;
    public Parameter weight;
    public Parameter bias;

    public LayerNorm(string name, int size, double eps) : base(name)
    {
        _eps = eps;
        weight = new Parameter(ones(size));
        bias = new Parameter(zeros(size));
        register_parameter("weight", weight);
        register_parameter("bias", bias);
    }

    public override Tensor forward(Tensor x)
    {
        var h = x.dtype == ScalarType.Float32 ? x : x.to(ScalarType.Float32);
        return F.layer_norm(h, [weight.shape[0]], weight, bias, _eps);
    }
}

internal sealed class Embedding : nn.Module<Tensor, Tensor>
{
    public Parameter weight;

    public Embedding(string name, int count, int dim) : base(name)
    {
        weight = new Parameter(empty(count, dim));
        register_parameter("weight", weight);
    }

    public override Tensor forward(Tensor ids) =>
        weight.index_select(0, ids.reshape(-1)).view([.. ids.shape, weight.shape[1]]);
}

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

    /// <summary>The engine's CUDA kernels while the model uses them (<see cref="CausalLm.FusedKernels"/>), else null.</summary>
    public Kernels.EngineKernels? Kernels { get; set; }

    /// <summary>Adapters attached but skipped: the base model's outputs (DPO's frozen reference under LoRA).</summary>
    public bool AdaptersDisabled { get; set; }

    /// <summary>
    /// Set while the network is built with a frozen base (<see cref="ModelOptions.FrozenBase"/>): the matrices
    /// (projections, embeddings, untied head) are created in this dtype without gradients, so no fp32 copy ever exists.
    /// </summary>
    public ScalarType? FrozenMatrixDType { get; init; }

    /// <summary>A new weight matrix: fp32 and trainable, or frozen in <see cref="FrozenMatrixDType"/>.</summary>
    public Parameter NewMatrix(long rows, long columns) =>
        FrozenMatrixDType is { } d ? new Parameter(empty(rows, columns, d), requires_grad: false) : new Parameter(empty(rows, columns));
}

/// <summary>Frozen matrices stored once in the matmul dtype instead of fp32 masters.</summary>
internal static class FrozenMatrix
{
    /// <summary>
    /// <paramref name="weight"/> as a frozen parameter of <paramref name="dtype"/>, the fp32 one released; null when it
    /// trains, is not a matrix (norms and biases stay fp32: their math runs in fp32, as in transformers) or is already
    /// of that dtype. The caller registers the result under the same name.
    /// </summary>
    public static Parameter? Cast(Parameter weight, ScalarType dtype)
    {
        if (weight.requires_grad || weight.dim() < 2 || weight.dtype == dtype) return null;
        Parameter cast;
        // The detached alias shares the fp32 storage: left to the garbage collector, it would keep all of it alive.
        using (no_grad())
        using (var fp32 = weight.detach())
            cast = new Parameter(fp32.to(dtype), requires_grad: false);
        cast.DetachFromDisposeScope();
        weight.Dispose();
        return cast;
    }
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

    // A frozen fp32 weight (a served model) in the matmul dtype, cast once instead of at every forward. A frozen base
    // stored in the matmul dtype (LoRA training, ModelOptions.FrozenBase) never needs it.
    private Tensor? _frozenCast;

    public Projection(string name, int inFeatures, int outFeatures, bool withBias, bool conv1D, RunSettings run) : base(name)
    {
        _run = run;
        Conv1D = conv1D;
        In = inFeatures;
        Out = outFeatures;
        weight = conv1D ? run.NewMatrix(inFeatures, outFeatures) : run.NewMatrix(outFeatures, inFeatures);
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

    /// <summary>Stores a frozen weight in <paramref name="dtype"/> only (see <see cref="FrozenMatrix.Cast"/>).</summary>
    public void StoreFrozenIn(ScalarType dtype)
    {
        if (FrozenMatrix.Cast(weight, dtype) is not { } cast) return;
        DropFrozenCast();
        weight = cast;
        ConditionallyRegisterParameter("weight", weight);
    }

    /// <summary>
    /// Folds the adapter into the base weight; the adapter stays registered but contributes zero. A base stored in
    /// bf16 is merged in bf16 (the sum formed in fp32, rounded once), as PEFT's merge does for a bf16 model.
    /// </summary>
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

    /// <summary>True while a cast copy of the weight is held beside it (a frozen fp32 weight under bf16 matmuls).</summary>
    internal bool HoldsCastCopy => _frozenCast is not null;

    public override Tensor forward(Tensor x)
    {
        // A weight stored in bf16 with bf16 matmuls off (set after the base was frozen) runs in fp32.
        var dt = _run.MatmulDType ?? (weight.dtype == ScalarType.Float32 ? null : ScalarType.Float32);
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
        if (lora_A is not null && lora_B is not null && !_run.AdaptersDisabled)
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
    private readonly RunSettings? _run;
    public Parameter weight;

    public RmsNorm(string name, int size, double eps, RunSettings? run = null) : base(name)
    {
        _eps = eps;
        _run = run;
        weight = new Parameter(ones(size));
        register_parameter("weight", weight);
    }

    public override Tensor forward(Tensor x)
    {
        // Training a frozen norm on CUDA: one kernel each way, straight to the bf16 the projections read.
        if (training && _run is not null && FusedRmsNorm.Applies(_run, x, weight))
            return FusedRmsNorm.Apply(x, weight, _eps);
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

/// <summary>A module that holds one matrix by the name <c>weight</c> (an embedding table, an untied output head).</summary>
internal abstract class WeightMatrix : nn.Module<Tensor, Tensor>
{
    public Parameter weight;

    protected WeightMatrix(string name, long rows, long columns, RunSettings run) : base(name)
    {
        weight = run.NewMatrix(rows, columns);
        register_parameter("weight", weight);
    }

    /// <summary>Stores a frozen matrix in <paramref name="dtype"/> only (see <see cref="FrozenMatrix.Cast"/>).</summary>
    public void StoreFrozenIn(ScalarType dtype)
    {
        if (FrozenMatrix.Cast(weight, dtype) is not { } cast) return;
        weight = cast;
        ConditionallyRegisterParameter("weight", weight);
    }
}

internal sealed class Embedding(string name, int count, int dim, RunSettings run) : WeightMatrix(name, count, dim, run)
{
    /// <summary>Rows of the table, always float32: the residual stream stays fp32 whatever the table is stored in.</summary>
    public override Tensor forward(Tensor ids)
    {
        var rows = weight.index_select(0, ids.reshape(-1)).view([.. ids.shape, weight.shape[1]]);
        return rows.dtype == ScalarType.Float32 ? rows : rows.to(ScalarType.Float32);
    }
}

/// <summary>Holds an untied output head so that its name is <c>lm_head.weight</c>.</summary>
internal sealed class HeadHolder(int vocab, int hidden, RunSettings run) : WeightMatrix("lm_head", vocab, hidden, run)
{
    public override Tensor forward(Tensor x) => throw new NotSupportedException();
}

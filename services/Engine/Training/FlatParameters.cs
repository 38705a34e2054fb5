using AspireTune.Engine.Kernels;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace AspireTune.Engine.Training;

/// <summary>
/// Trainable parameters as views of one contiguous fp32 buffer, grouped by weight decay (decayed matrices
/// first, then biases and norms), with gradients as views of a matching buffer: zeroing gradients, their norm
/// and AdamW are then one or a few kernels for the whole model instead of several per parameter.
/// </summary>
internal sealed class FlatParameters : IDisposable
{
    internal sealed class Group(string name, double weightDecay, Tensor data, Tensor grad, IReadOnlyList<(string Name, Parameter P)> members)
    {
        public string Name { get; } = name;
        public double WeightDecay { get; } = weightDecay;
        public Tensor Data { get; } = data;
        public Tensor Grad { get; } = grad;
        public IReadOnlyList<(string Name, Parameter P)> Members { get; } = members;
    }

    public FlatParameters(IEnumerable<(string Name, Parameter P)> trainable, double weightDecay, Device device)
    {
        var list = trainable.ToList();
        if (list.Count == 0)
            throw new InvalidOperationException("nothing to train: every parameter is frozen (a model built with ModelOptions.FrozenBase trains adapters only: set LoRA)");
        if (list.FirstOrDefault(p => p.P.dtype != ScalarType.Float32) is { Name: { } stored } other)
            throw new InvalidOperationException($"parameter '{stored}' is {other.P.dtype}: trained parameters need fp32 masters, and a frozen base stored in bf16 cannot be trained in full");
        // Decoupled weight decay applies to matrices only: biases and norm weights (1-D) are never decayed.
        var groups = new[] { ("decay", weightDecay, list.Where(p => p.P.dim() >= 2).ToList()),
                             ("no_decay", 0.0, list.Where(p => p.P.dim() < 2).ToList()) }
            .Where(g => g.Item3.Count > 0).ToList();
        var total = list.Sum(m => m.P.numel());
        Data = zeros(total, dtype: ScalarType.Float32, device: device);
        Grad = zeros(total, dtype: ScalarType.Float32, device: device);
        var built = new List<Group>();
        long offset = 0;
        using (no_grad())
        {
            foreach (var (name, wd, members) in groups)
            {
                var start = offset;
                foreach (var (_, p) in members)
                {
                    var n = p.numel();
                    var view = Data.narrow(0, offset, n).view(p.shape);
                    view.copy_(p);
                    p.set_(view);
                    p.grad = Grad.narrow(0, offset, n).view(p.shape);
                    offset += n;
                }
                built.Add(new Group(name, wd, Data.narrow(0, start, offset - start), Grad.narrow(0, start, offset - start), members));
            }
        }
        Groups = built;
        DecayEnd = Groups.Count > 0 && Groups[0].Name == "decay" && Groups[0].WeightDecay > 0 ? Groups[0].Data.numel() : 0;
    }

    public IReadOnlyList<Group> Groups { get; }

    /// <summary>Every trainable value, the groups one after the other.</summary>
    public Tensor Data { get; }

    /// <summary>Every gradient, laid out as <see cref="Data"/>.</summary>
    public Tensor Grad { get; }

    /// <summary>Elements [0, DecayEnd) of <see cref="Data"/> are weight-decayed.</summary>
    public long DecayEnd { get; }

    public long Count => Data.numel();

    public void ZeroGrad() => Grad.zero_();

    /// <summary>Global L2 norm of all gradients, on the device (no host synchronisation).</summary>
    public Tensor GradNorm() => Grad.norm();

    /// <summary>
    /// Global L2 norm of all gradients (returned, before clipping), scaling them down to
    /// <paramref name="maxNorm"/> when above it, as torch's clip_grad_norm_ does: no host synchronisation.
    /// </summary>
    public Tensor ClipGradNorm(double maxNorm)
    {
        var norm = GradNorm();
        if (maxNorm > 0) Clip(norm, maxNorm);
        return norm;
    }

    /// <summary>Scales the gradients by min(1, maxNorm / (norm + 1e-6)).</summary>
    public void Clip(Tensor norm, double maxNorm)
    {
        using var scope = NewDisposeScope();
        Grad.mul_((maxNorm / (norm + 1e-6)).clamp_max(1.0));
    }

    public float[][] Snapshot() => [.. Groups.Select(g => g.Data.cpu().data<float>().ToArray())];

    public void Restore(float[][] values)
    {
        using var _ = no_grad();
        for (var i = 0; i < Groups.Count; i++)
        {
            using var t = tensor(values[i]);
            Groups[i].Data.copy_(t);
        }
    }

    /// <summary>
    /// Releases the buffers. Parameters keep their values (their storage is shared and stays alive), while the
    /// gradient views are dropped so that a model served after training does not hold a model-sized gradient.
    /// </summary>
    public void Dispose()
    {
        foreach (var g in Groups)
        {
            foreach (var (_, p) in g.Members) p.grad = null;
            g.Data.Dispose();
            g.Grad.Dispose();
        }
        Data.Dispose();
        Grad.Dispose();
    }
}

/// <summary>
/// AdamW with decoupled weight decay (Loshchilov and Hutter), the same arithmetic as torch.optim.AdamW, over
/// the flat buffers: one fused kernel launch for the whole model (gradient clipping folded in) when the engine's
/// kernels run, else seven TorchSharp kernels per group.
/// </summary>
internal sealed class FlatAdamW : IDisposable
{
    private readonly FlatParameters _params;
    private readonly EngineKernels? _kernels;
    private readonly double _beta1;
    private readonly double _beta2;
    private readonly double _eps;
    private readonly Tensor _expAvg;
    private readonly Tensor _expAvgSq;

    public FlatAdamW(FlatParameters parameters, double beta1, double beta2, double eps, EngineKernels? kernels = null)
    {
        _params = parameters;
        _kernels = kernels;
        _beta1 = beta1;
        _beta2 = beta2;
        _eps = eps;
        _expAvg = zeros_like(parameters.Data);
        _expAvgSq = zeros_like(parameters.Data);
        long offset = 0;
        var avg = new List<Tensor>();
        var sq = new List<Tensor>();
        foreach (var g in parameters.Groups)
        {
            var n = g.Data.numel();
            avg.Add(_expAvg.narrow(0, offset, n));
            sq.Add(_expAvgSq.narrow(0, offset, n));
            offset += n;
        }
        ExpAvg = [.. avg];
        ExpAvgSq = [.. sq];
    }

    public int StepCount { get; set; }

    /// <summary>First moments, one view per parameter group.</summary>
    public Tensor[] ExpAvg { get; }

    /// <summary>Second moments, one view per parameter group.</summary>
    public Tensor[] ExpAvgSq { get; }

    /// <summary>True when steps run as the one fused kernel.</summary>
    public bool Fused => _kernels is not null;

    public void Step(double lr) => Step(lr, null, 0);

    /// <summary>
    /// One step; with <paramref name="gradNorm"/> (from <see cref="FlatParameters.GradNorm"/>) and a positive
    /// <paramref name="maxNorm"/>, the gradients are first clipped to that norm as clip_grad_norm_ does.
    /// </summary>
    public void Step(double lr, Tensor? gradNorm, double maxNorm)
    {
        StepCount++;
        var bc1 = 1 - Math.Pow(_beta1, StepCount);
        var bc2Sqrt = Math.Sqrt(1 - Math.Pow(_beta2, StepCount));
        var decay = _params.Groups.FirstOrDefault(g => g.WeightDecay > 0)?.WeightDecay ?? 0;
        if (_kernels is not null)
        {
            _kernels.AdamW(_params.Data, _params.Grad, _expAvg, _expAvgSq, _params.DecayEnd, maxNorm > 0 ? gradNorm : null, (float)maxNorm,
                (float)(1 - lr * decay), (float)_beta1, (float)_beta2, (float)_eps, (float)(lr / bc1), (float)bc2Sqrt);
            return;
        }
        if (gradNorm is not null && maxNorm > 0) _params.Clip(gradNorm, maxNorm);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        for (var i = 0; i < _params.Groups.Count; i++)
        {
            var g = _params.Groups[i];
            if (g.WeightDecay > 0) g.Data.mul_(1 - lr * g.WeightDecay);
            ExpAvg[i].lerp_(g.Grad, 1 - _beta1);
            ExpAvgSq[i].mul_(_beta2).addcmul_(g.Grad, g.Grad, 1 - _beta2);
            // sqrt(v)/sqrt(bc2) + eps rescaled by sqrt(bc2): the same update as torch's AdamW with one pass fewer.
            var denom = ExpAvgSq[i].sqrt().add_(_eps * bc2Sqrt);
            g.Data.addcdiv_(ExpAvg[i], denom, -lr * bc2Sqrt / bc1);
        }
    }

    public void Dispose()
    {
        foreach (var t in ExpAvg) t.Dispose();
        foreach (var t in ExpAvgSq) t.Dispose();
        _expAvg.Dispose();
        _expAvgSq.Dispose();
    }
}

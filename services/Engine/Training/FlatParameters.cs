using TorchSharp.Modules;
using static TorchSharp.torch;

namespace AspireTune.Engine.Training;

/// <summary>
/// Trainable parameters as views of one contiguous fp32 buffer per weight-decay group, with gradients as
/// views of a matching buffer: zeroing gradients, clipping and AdamW are then a few kernels for the whole
/// model instead of several per parameter.
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
        // Decoupled weight decay applies to matrices only: biases and norm weights (1-D) are never decayed.
        Groups =
        [
            .. new[] { ("decay", weightDecay, list.Where(p => p.P.dim() >= 2).ToList()),
                       ("no_decay", 0.0, list.Where(p => p.P.dim() < 2).ToList()) }
                .Where(g => g.Item3.Count > 0)
                .Select(g => Build(g.Item1, g.Item2, g.Item3, device)),
        ];
    }

    public IReadOnlyList<Group> Groups { get; }

    public long Count => Groups.Sum(g => g.Data.numel());

    private static Group Build(string name, double wd, List<(string Name, Parameter P)> members, Device device)
    {
        var total = members.Sum(m => m.P.numel());
        var data = zeros(total, dtype: ScalarType.Float32, device: device);
        var grad = zeros(total, dtype: ScalarType.Float32, device: device);
        long offset = 0;
        using (no_grad())
        {
            foreach (var (_, p) in members)
            {
                var n = p.numel();
                var view = data.narrow(0, offset, n).view(p.shape);
                view.copy_(p);
                p.set_(view);
                p.grad = grad.narrow(0, offset, n).view(p.shape);
                offset += n;
            }
        }
        return new Group(name, wd, data, grad, members);
    }

    public void ZeroGrad()
    {
        foreach (var g in Groups) g.Grad.zero_();
    }

    /// <summary>
    /// Global L2 norm of all gradients (returned, before clipping), scaling them down to
    /// <paramref name="maxNorm"/> when above it, as torch's clip_grad_norm_ does: no host synchronisation.
    /// </summary>
    public Tensor ClipGradNorm(double maxNorm)
    {
        using var scope = NewDisposeScope();
        var norm = Groups.Count == 1 ? Groups[0].Grad.norm() : stack(Groups.Select(g => g.Grad.norm())).norm();
        if (maxNorm > 0)
        {
            var coef = (maxNorm / (norm + 1e-6)).clamp_max(1.0);
            foreach (var g in Groups) g.Grad.mul_(coef);
        }
        return scope.MoveToOuter(norm);
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
    }
}

/// <summary>
/// AdamW with decoupled weight decay (Loshchilov and Hutter), the same arithmetic as torch.optim.AdamW,
/// applied to each flat group in seven kernels.
/// </summary>
internal sealed class FlatAdamW : IDisposable
{
    private readonly FlatParameters _params;
    private readonly double _beta1;
    private readonly double _beta2;
    private readonly double _eps;

    public FlatAdamW(FlatParameters parameters, double beta1, double beta2, double eps)
    {
        _params = parameters;
        _beta1 = beta1;
        _beta2 = beta2;
        _eps = eps;
        ExpAvg = [.. parameters.Groups.Select(g => zeros_like(g.Data))];
        ExpAvgSq = [.. parameters.Groups.Select(g => zeros_like(g.Data))];
    }

    public int StepCount { get; set; }
    public Tensor[] ExpAvg { get; }
    public Tensor[] ExpAvgSq { get; }

    public void Step(double lr)
    {
        StepCount++;
        var bc1 = 1 - Math.Pow(_beta1, StepCount);
        var bc2Sqrt = Math.Sqrt(1 - Math.Pow(_beta2, StepCount));
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
    }
}

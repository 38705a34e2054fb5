using AspireTune.Engine.Kernels;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace AspireTune.Engine.Models;

/// <summary>
/// RMSNorm with a frozen weight (LoRA training) as one kernel forward (fp32 rows in, the bf16 matmul input out) and
/// one backward, instead of the cast, square, mean, rsqrt and two products that eager libtorch runs and saves.
/// </summary>
internal sealed class FusedRmsNorm : SingleTensorFunction<FusedRmsNorm>
{
    public override string Name => nameof(FusedRmsNorm);

    /// <summary>True where <see cref="Apply"/> may replace the plain computation.</summary>
    public static bool Applies(RunSettings run, Tensor x, Tensor weight) =>
        run.Kernels is { HasTrainingFusions: true } && run.MatmulDType == ScalarType.BFloat16 && x.dtype == ScalarType.Float32
        && x.device.type == DeviceType.CUDA && !weight.requires_grad && weight.dtype == ScalarType.Float32;

    public static Tensor Apply(Tensor x, Tensor weight, double eps) => apply(x, weight, eps);

    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var x = ((Tensor)vars[0]).contiguous();
        var weight = ((Tensor)vars[1]).contiguous();
        var rows = x.numel() / weight.numel();
        var y = empty(x.shape, ScalarType.BFloat16, x.device);
        var rstd = empty([rows], ScalarType.Float32, x.device);
        EngineKernels.For(x.device)!.RmsNormForward(x, weight, y, rstd, (float)(double)vars[2]);
        ctx.save_for_backward([x, weight, rstd]);
        return y;
    }

    public override List<Tensor> backward(AutogradContext ctx, Tensor grad)
    {
        var saved = ctx.get_saved_variables();
        var (x, weight, rstd) = (saved[0], saved[1], saved[2]);
        var dy = BackwardScope.Bf16(grad);
        var dx = empty_like(x);
        EngineKernels.For(x.device)!.RmsNormBackward(dy, x, weight, rstd, dx);
        BackwardScope.Done([.. saved, dy, grad], dx);
        return [dx, null!, null!];
    }
}

/// <summary>
/// Releases what a custom backward holds. It runs on libtorch's autograd thread, outside every dispose scope, so the
/// tensors it unpacks, receives and returns would otherwise keep their GPU memory until the garbage collector runs (a
/// leak of several GB a step for a 1B model). Returned gradients are released at the next backward call, by which time
/// libtorch holds its own reference to them.
/// </summary>
internal static class BackwardScope
{
    private static readonly Lock Gate = new();
    private static readonly List<Tensor> Returned = [];

    public static Tensor Bf16(Tensor grad) =>
        grad.dtype == ScalarType.BFloat16 ? grad.contiguous() : grad.to(ScalarType.BFloat16).contiguous();

    public static void Done(IEnumerable<Tensor> used, params Tensor[] returned)
    {
        lock (Gate)
        {
            foreach (var t in Returned) t.Dispose();
            Returned.Clear();
            Returned.AddRange(returned);
        }
        foreach (var t in used) t.Dispose();
    }
}

/// <summary>SwiGLU's product silu(gate) * up in bf16 as one kernel forward and one backward (libtorch: silu, mul and their backward).</summary>
internal sealed class FusedSiluMul : SingleTensorFunction<FusedSiluMul>
{
    public override string Name => nameof(FusedSiluMul);

    public static bool Applies(RunSettings run, Tensor gate, Tensor up) =>
        run.Kernels is { HasTrainingFusions: true } && gate.dtype == ScalarType.BFloat16 && up.dtype == ScalarType.BFloat16
        && gate.device.type == DeviceType.CUDA && gate.numel() % 2 == 0 && gate.shape.SequenceEqual(up.shape);

    public static Tensor Apply(Tensor gate, Tensor up) => apply(gate, up);

    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var g = ((Tensor)vars[0]).contiguous();
        var u = ((Tensor)vars[1]).contiguous();
        var h = empty_like(g);
        EngineKernels.For(g.device)!.SiluMulForward(g, u, h);
        ctx.save_for_backward([g, u]);
        return h;
    }

    public override List<Tensor> backward(AutogradContext ctx, Tensor grad)
    {
        var saved = ctx.get_saved_variables();
        var (g, u) = (saved[0], saved[1]);
        var dh = BackwardScope.Bf16(grad);
        var dg = empty_like(g);
        var du = empty_like(u);
        EngineKernels.For(g.device)!.SiluMulBackward(dh, g, u, dg, du);
        BackwardScope.Done([.. saved, dh, grad], dg, du);
        return [dg, du];
    }
}

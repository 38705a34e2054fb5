using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace AspireTune.Engine.Kernels;

/// <summary>
/// The engine's fused CUDA kernels (<c>engine_kernels.cu</c>), loaded from the PTX embedded in the assembly
/// through the CUDA driver API and launched on TorchSharp tensors' device memory, on the legacy default stream
/// (TorchSharp 0.107 never switches libtorch's current stream, which is that stream), so they are ordered with
/// libtorch's own kernels without any synchronisation. <see cref="For"/> is null on CPU, without a driver, or
/// when <c>ASPIRETUNE_FUSED_KERNELS=0</c>; callers then take the plain TorchSharp path.
/// </summary>
internal sealed unsafe partial class EngineKernels
{
    /// <summary>Set to 0 to turn the fused kernels off (for side-by-side measurements).</summary>
    public const string SwitchVariable = "ASPIRETUNE_FUSED_KERNELS";

    /// <summary>A PTX file to load instead of the embedded one (for trying a kernel on the GPU machine).</summary>
    public const string PtxVariable = "ASPIRETUNE_ENGINE_PTX";

    private const string Resource = "AspireTune.Engine.Kernels.engine_kernels.ptx";
    private static readonly Lock Gate = new();
    private static readonly Dictionary<int, EngineKernels?> ByDevice = [];

    private readonly IntPtr _context;
    private readonly IntPtr _adamw;
    private readonly IntPtr _crossEntropy;

    private EngineKernels(IntPtr context, IntPtr module)
    {
        _context = context;
        CudaDriver.Check(CudaDriver.cuModuleGetFunction(out _adamw, module, "adamw_flat"), "cuModuleGetFunction(adamw_flat)");
        CudaDriver.Check(CudaDriver.cuModuleGetFunction(out _crossEntropy, module, "cross_entropy_bf16"), "cuModuleGetFunction(cross_entropy_bf16)");
    }

    /// <summary>Why the last <see cref="For"/> on a CUDA device returned null, if it did.</summary>
    public static string? UnavailableReason { get; private set; }

    /// <summary>The kernels for <paramref name="device"/>, or null where they cannot run (see the class summary).</summary>
    public static EngineKernels? For(Device device)
    {
        if (device.type != DeviceType.CUDA) return null;
        if (Environment.GetEnvironmentVariable(SwitchVariable) == "0")
        {
            UnavailableReason = $"{SwitchVariable}=0";
            return null;
        }
        var index = Math.Max(0, (int)device.index);
        lock (Gate)
        {
            if (!ByDevice.TryGetValue(index, out var kernels))
            {
                kernels = TryLoad(index);
                ByDevice[index] = kernels;
            }
            return kernels;
        }
    }

    private static EngineKernels? TryLoad(int ordinal)
    {
        try
        {
            var ptx = ReadPtx();
            if (ptx is null)
            {
                UnavailableReason = "no PTX embedded";
                return null;
            }
            CudaDriver.Check(CudaDriver.cuInit(0), "cuInit");
            CudaDriver.Check(CudaDriver.cuDeviceGet(out var device, ordinal), "cuDeviceGet");
            // libtorch works in the device's primary context; the kernels live in it too.
            CudaDriver.Check(CudaDriver.cuDevicePrimaryCtxRetain(out var context, device), "cuDevicePrimaryCtxRetain");
            CudaDriver.Check(CudaDriver.cuCtxSetCurrent(context), "cuCtxSetCurrent");
            IntPtr module;
            fixed (byte* image = ptx)
                CudaDriver.Check(CudaDriver.cuModuleLoadData(out module, image), "cuModuleLoadData");
            return new EngineKernels(context, module);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or InvalidOperationException or IOException)
        {
            UnavailableReason = e.Message;
            return null;
        }
    }

    /// <summary>The PTX text, NUL-terminated as cuModuleLoadData wants it.</summary>
    private static byte[]? ReadPtx()
    {
        byte[] bytes;
        if (Environment.GetEnvironmentVariable(PtxVariable) is { Length: > 0 } path)
        {
            bytes = File.ReadAllBytes(path);
        }
        else
        {
            using var stream = typeof(EngineKernels).Assembly.GetManifestResourceStream(Resource);
            if (stream is null) return null;
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            bytes = copy.ToArray();
        }
        return [.. bytes, 0];
    }

    /// <summary>
    /// One AdamW step over flat fp32 buffers in one launch: weight decay on elements [0, <paramref name="decayEnd"/>),
    /// gradients clipped by <c>min(1, maxNorm / (gradNorm + 1e-6))</c> as they are read when
    /// <paramref name="gradNorm"/> (a float32 scalar on the device) is given; the gradient buffer is left as it was.
    /// </summary>
    public void AdamW(Tensor param, Tensor grad, Tensor expAvg, Tensor expAvgSq, long decayEnd, Tensor? gradNorm, float maxNorm,
        float decayFactor, float beta1, float beta2, float eps, float stepSize, float bc2Sqrt)
    {
        var n = param.numel();
        foreach (var t in new[] { param, grad, expAvg, expAvgSq })
            Require(t, ScalarType.Float32, n, "AdamW buffer");
        if (gradNorm is not null) Require(gradNorm, ScalarType.Float32, 1, "gradient norm");
        IntPtr p = Ptr(param), g = Ptr(grad), m = Ptr(expAvg), v = Ptr(expAvgSq), norm = gradNorm is null ? IntPtr.Zero : Ptr(gradNorm);
        void** args = stackalloc void*[14];
        args[0] = &p; args[1] = &g; args[2] = &m; args[3] = &v; args[4] = &n; args[5] = &decayEnd; args[6] = &norm;
        args[7] = &maxNorm; args[8] = &decayFactor; args[9] = &beta1; args[10] = &beta2; args[11] = &eps; args[12] = &stepSize;
        args[13] = &bc2Sqrt;
        var blocks = (uint)Math.Clamp((n / 4 + 255) / 256, 1, 8192);
        Launch(_adamw, blocks, 256, args, "adamw_flat");
    }

    /// <summary>
    /// Cross-entropy forward and backward of a bf16 logits chunk [rows, vocab] (rows contiguous in memory):
    /// writes each row's loss (logsumexp - target logit, 0 where the target is negative) into
    /// <paramref name="loss"/> [rows] (float32) and overwrites the logits with softmax - onehot(target).
    /// </summary>
    public void CrossEntropy(Tensor logits, Tensor targets, Tensor loss)
    {
        long rows = logits.shape[0], vocab = logits.shape[1];
        if (logits.dtype != ScalarType.BFloat16 || logits.stride(1) != 1 || logits.device.type != DeviceType.CUDA)
            throw new ArgumentException("cross-entropy logits must be a bf16 CUDA tensor with contiguous rows");
        Require(targets, ScalarType.Int64, rows, "targets");
        Require(loss, ScalarType.Float32, rows, "row losses");
        if (rows == 0) return;
        IntPtr x = Ptr(logits), t = Ptr(targets), l = Ptr(loss);
        var rowStride = logits.stride(0);
        var v = (int)vocab;
        void** args = stackalloc void*[5];
        args[0] = &x; args[1] = &rowStride; args[2] = &t; args[3] = &l; args[4] = &v;
        Launch(_crossEntropy, (uint)rows, 1024, args, "cross_entropy_bf16");
    }

    private void Launch(IntPtr function, uint blocks, uint threads, void** args, string name)
    {
        // A thread that has not touched CUDA through libtorch yet has no current context.
        CudaDriver.Check(CudaDriver.cuCtxGetCurrent(out var current), "cuCtxGetCurrent");
        if (current != _context) CudaDriver.Check(CudaDriver.cuCtxSetCurrent(_context), "cuCtxSetCurrent");
        CudaDriver.Check(CudaDriver.cuLaunchKernel(function, blocks, 1, 1, threads, 1, 1, 0, IntPtr.Zero, args, null), name);
    }

    private static void Require(Tensor t, ScalarType dtype, long count, string what)
    {
        if (t.dtype != dtype || t.numel() != count || !t.is_contiguous() || t.device.type != DeviceType.CUDA)
            throw new ArgumentException($"{what}: expected a contiguous {dtype} CUDA tensor of {count} elements, got {t.dtype} [{string.Join(", ", t.shape)}] on {t.device}");
    }

    private static IntPtr Ptr(Tensor t)
    {
        var p = THSTensor_data(t.Handle);
        if (p == IntPtr.Zero) throw new InvalidOperationException("tensor has no data pointer");
        return p;
    }

    [LibraryImport("LibTorchSharp")]
    private static partial IntPtr THSTensor_data(IntPtr handle);
}

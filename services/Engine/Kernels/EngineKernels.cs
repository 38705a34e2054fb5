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

    private readonly IntPtr _decodeLayerNorm;
    private readonly IntPtr _decodeGelu;
    private readonly IntPtr _decodeAttention;
    private readonly IntPtr _decodeGreedy;
    private readonly IntPtr _decodeAttentionPaged;
    private readonly IntPtr _rmsNormForward, _rmsNormBackward, _siluMulForward, _siluMulBackward;

    private EngineKernels(IntPtr context, IntPtr module)
    {
        _context = context;
        CudaDriver.Check(CudaDriver.cuModuleGetFunction(out _adamw, module, "adamw_flat"), "cuModuleGetFunction(adamw_flat)");
        CudaDriver.Check(CudaDriver.cuModuleGetFunction(out _crossEntropy, module, "cross_entropy_bf16"), "cuModuleGetFunction(cross_entropy_bf16)");
        // The decode kernels came later: a PTX without them still serves training.
        HasDecode = CudaDriver.cuModuleGetFunction(out _decodeLayerNorm, module, "decode_add_layer_norm") == 0
            & CudaDriver.cuModuleGetFunction(out _decodeGelu, module, "decode_gelu") == 0
            & CudaDriver.cuModuleGetFunction(out _decodeAttention, module, "decode_attention") == 0
            & CudaDriver.cuModuleGetFunction(out _decodeGreedy, module, "decode_greedy") == 0
            & CudaDriver.cuModuleGetFunction(out _decodeAttentionPaged, module, "decode_attention_paged") == 0;
        HasTrainingFusions = CudaDriver.cuModuleGetFunction(out _rmsNormForward, module, "rms_norm_fwd") == 0
            & CudaDriver.cuModuleGetFunction(out _rmsNormBackward, module, "rms_norm_bwd") == 0
            & CudaDriver.cuModuleGetFunction(out _siluMulForward, module, "silu_mul_fwd") == 0
            & CudaDriver.cuModuleGetFunction(out _siluMulBackward, module, "silu_mul_bwd") == 0;
    }

    /// <summary>True when the PTX has the RMSNorm and SwiGLU kernels of LoRA training (<see cref="Models.FusedRmsNorm"/>).</summary>
    public bool HasTrainingFusions { get; }

    /// <summary>True when the PTX has the batch-1 decode kernels (<see cref="Generation.Gpt2Decoder"/>).</summary>
    public bool HasDecode { get; }

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

    /// <summary>
    /// For each of <paramref name="rows"/> rows of n fp32 elements: h = x + a (a may be zero), y = layer_norm(h); with
    /// <paramref name="ids"/>, h = x[ids[row]] + a[positions[row]] (or a[pos] without positions). Raw device pointers.
    /// </summary>
    public void DecodeAddLayerNorm(IntPtr x, IntPtr a, IntPtr hOut, IntPtr y, IntPtr gamma, IntPtr beta, int n, float eps, IntPtr ids,
        IntPtr positions, long pos, int rows = 1)
    {
        void** args = stackalloc void*[11];
        args[0] = &x; args[1] = &a; args[2] = &hOut; args[3] = &y; args[4] = &gamma; args[5] = &beta; args[6] = &n; args[7] = &eps;
        args[8] = &ids; args[9] = &positions; args[10] = &pos;
        Launch(_decodeLayerNorm, (uint)rows, 256, args, "decode_add_layer_norm", (uint)(n * sizeof(float)));
    }

    /// <summary>
    /// Batched attention over the paged cache pools [rows, heads * dim]: sequence b writes its key and value to pool row
    /// writeRows[b] and attends over gatherRows[b * keys + t] for t up to positions[b] (all int64 device arrays).
    /// </summary>
    public void DecodeAttentionPaged(IntPtr qkv, IntPtr kPool, IntPtr vPool, IntPtr output, IntPtr writeRows, IntPtr gatherRows, IntPtr positions,
        int heads, int dim, int keys, float scale, int batch)
    {
        void** args = stackalloc void*[11];
        args[0] = &qkv; args[1] = &kPool; args[2] = &vPool; args[3] = &output; args[4] = &writeRows; args[5] = &gatherRows; args[6] = &positions;
        args[7] = &heads; args[8] = &dim; args[9] = &keys; args[10] = &scale;
        Launch(_decodeAttentionPaged, (uint)heads, DecodeAttentionThreads, args, "decode_attention_paged", DecodeAttentionSharedBytes(dim, keys), (uint)batch);
    }

    /// <summary>GPT-2's tanh GELU over n fp32 elements, in place.</summary>
    public void DecodeGelu(IntPtr x, int n)
    {
        void** args = stackalloc void*[2];
        args[0] = &x; args[1] = &n;
        Launch(_decodeGelu, (uint)((n + 255) / 256), 256, args, "decode_gelu");
    }

    /// <summary>Appends position <paramref name="pos"/>'s key and value from qkv to the caches [heads, maxPos, dim] and attends over 0..pos.</summary>
    public void DecodeAttention(IntPtr qkv, IntPtr kCache, IntPtr vCache, IntPtr output, int heads, int dim, int maxPos, long pos, float scale)
    {
        void** args = stackalloc void*[9];
        args[0] = &qkv; args[1] = &kCache; args[2] = &vCache; args[3] = &output; args[4] = &heads; args[5] = &dim; args[6] = &maxPos;
        args[7] = &pos; args[8] = &scale;
        Launch(_decodeAttention, (uint)heads, DecodeAttentionThreads, args, "decode_attention", DecodeAttentionSharedBytes(dim, (int)pos + 1));
    }

    public const uint DecodeAttentionThreads = 256;

    public static uint DecodeAttentionSharedBytes(int dim, int positions) => (uint)((dim + positions + (int)DecodeAttentionThreads) * sizeof(float));

    /// <summary>Greedy pick over fp32 logits [rows, vocab]: result (2 doubles a row) = argmax and its log-softmax; nextId (int64 a row) = argmax.</summary>
    public void DecodeGreedy(IntPtr logits, int vocab, IntPtr result, IntPtr nextId, int rows = 1)
    {
        void** args = stackalloc void*[4];
        args[0] = &logits; args[1] = &vocab; args[2] = &result; args[3] = &nextId;
        Launch(_decodeGreedy, (uint)rows, 1024, args, "decode_greedy");
    }

    /// <summary>RMSNorm of fp32 rows [rows, n] into bf16 y, saving each row's rstd (fp32 [rows]).</summary>
    public void RmsNormForward(Tensor x, Tensor weight, Tensor y, Tensor rstd, float eps)
    {
        var n = (int)weight.numel();
        var rows = x.numel() / n;
        Require(x, ScalarType.Float32, rows * n, "RMSNorm input");
        Require(weight, ScalarType.Float32, n, "RMSNorm weight");
        Require(y, ScalarType.BFloat16, rows * n, "RMSNorm output");
        Require(rstd, ScalarType.Float32, rows, "RMSNorm rstd");
        IntPtr xp = Ptr(x), wp = Ptr(weight), yp = Ptr(y), rp = Ptr(rstd);
        void** args = stackalloc void*[6];
        args[0] = &xp; args[1] = &wp; args[2] = &yp; args[3] = &rp; args[4] = &n; args[5] = &eps;
        Launch(_rmsNormForward, (uint)rows, 256, args, "rms_norm_fwd");
    }

    /// <summary>The input gradient of <see cref="RmsNormForward"/> for a frozen weight: dx (fp32) from dy (bf16).</summary>
    public void RmsNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor rstd, Tensor dx)
    {
        var n = (int)weight.numel();
        var rows = x.numel() / n;
        Require(dy, ScalarType.BFloat16, rows * n, "RMSNorm output gradient");
        Require(x, ScalarType.Float32, rows * n, "RMSNorm input");
        Require(rstd, ScalarType.Float32, rows, "RMSNorm rstd");
        Require(dx, ScalarType.Float32, rows * n, "RMSNorm input gradient");
        IntPtr dyp = Ptr(dy), xp = Ptr(x), wp = Ptr(weight), rp = Ptr(rstd), dxp = Ptr(dx);
        void** args = stackalloc void*[6];
        args[0] = &dyp; args[1] = &xp; args[2] = &wp; args[3] = &rp; args[4] = &dxp; args[5] = &n;
        Launch(_rmsNormBackward, (uint)rows, 256, args, "rms_norm_bwd");
    }

    /// <summary>h = silu(g) * u over bf16 tensors of an even number of elements.</summary>
    public void SiluMulForward(Tensor g, Tensor u, Tensor h)
    {
        var n = g.numel();
        foreach (var (t, what) in new[] { (g, "gate"), (u, "up"), (h, "product") }) Require(t, ScalarType.BFloat16, n, "SwiGLU " + what);
        IntPtr gp = Ptr(g), up = Ptr(u), hp = Ptr(h);
        var pairs = n / 2;
        void** args = stackalloc void*[4];
        args[0] = &gp; args[1] = &up; args[2] = &hp; args[3] = &pairs;
        Launch(_siluMulForward, (uint)Math.Clamp((pairs + 255) / 256, 1, 65535), 256, args, "silu_mul_fwd");
    }

    /// <summary>The gradients of <see cref="SiluMulForward"/>: dg and du (bf16) from dh.</summary>
    public void SiluMulBackward(Tensor dh, Tensor g, Tensor u, Tensor dg, Tensor du)
    {
        var n = g.numel();
        foreach (var (t, what) in new[] { (dh, "product gradient"), (g, "gate"), (u, "up"), (dg, "gate gradient"), (du, "up gradient") })
            Require(t, ScalarType.BFloat16, n, "SwiGLU " + what);
        IntPtr dhp = Ptr(dh), gp = Ptr(g), up = Ptr(u), dgp = Ptr(dg), dup = Ptr(du);
        var pairs = n / 2;
        void** args = stackalloc void*[6];
        args[0] = &dhp; args[1] = &gp; args[2] = &up; args[3] = &dgp; args[4] = &dup; args[5] = &pairs;
        Launch(_siluMulBackward, (uint)Math.Clamp((pairs + 255) / 256, 1, 65535), 256, args, "silu_mul_bwd");
    }

    private void Launch(IntPtr function, uint blocks, uint threads, void** args, string name, uint sharedBytes = 0, uint blocksY = 1)
    {
        // A thread that has not touched CUDA through libtorch yet has no current context.
        CudaDriver.Check(CudaDriver.cuCtxGetCurrent(out var current), "cuCtxGetCurrent");
        if (current != _context) CudaDriver.Check(CudaDriver.cuCtxSetCurrent(_context), "cuCtxSetCurrent");
        CudaDriver.Check(CudaDriver.cuLaunchKernel(function, blocks, blocksY, 1, threads, 1, 1, sharedBytes, IntPtr.Zero, args, null), name);
    }

    private static void Require(Tensor t, ScalarType dtype, long count, string what)
    {
        if (t.dtype != dtype || t.numel() != count || !t.is_contiguous() || t.device.type != DeviceType.CUDA)
            throw new ArgumentException($"{what}: expected a contiguous {dtype} CUDA tensor of {count} elements, got {t.dtype} [{string.Join(", ", t.shape)}] on {t.device}");
    }

    internal static IntPtr Ptr(Tensor t)
    {
        var p = THSTensor_data(t.Handle);
        if (p == IntPtr.Zero) throw new InvalidOperationException("tensor has no data pointer");
        return p;
    }

    [LibraryImport("LibTorchSharp")]
    private static partial IntPtr THSTensor_data(IntPtr handle);
}

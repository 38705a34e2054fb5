using static TorchSharp.torch;

namespace AspireTune.Engine.Models;

/// <summary>
/// Summed cross-entropy of the output head without a logits tensor for the whole batch: the head's matmul,
/// the softmax and the head's backward run chunk by chunk of rows, during the forward pass, and the gradients
/// reach autograd through a surrogate term whose value is zero. Each chunk's logits are replaced in place by
/// their gradient (softmax - onehot) by <see cref="RowKernel"/>: the fused CUDA kernel on the GPU, or
/// <see cref="TorchRows"/> (plain TorchSharp, any device).
/// </summary>
internal static class ChunkedCrossEntropy
{
    /// <summary>
    /// Writes each row's loss into loss [rows] and overwrites logits [rows, V] with d loss / d logits; the logits
    /// may be a view whose rows are further apart than V.
    /// </summary>
    public delegate void RowKernel(Tensor logits, Tensor targets, Tensor loss);

    /// <summary>The head's rows are padded to a multiple of this for the matmuls.</summary>
    public const long VocabAlignment = 64;

    /// <summary>Rows per chunk so that a chunk's logits take about 512 MiB in two-byte elements.</summary>
    public static long DefaultChunkRows(long vocab) => Math.Max(256, (256L << 20) / vocab);

    /// <summary>
    /// Sum over rows of -log softmax(hidden @ weight^T)[target] for hidden [N, d] (or [B, T, d]) and targets [N]
    /// (negative = no loss). Gradients flow to <paramref name="hidden"/> and, when it requires them, to
    /// <paramref name="weight"/> [V, d], as if the full logits had been computed.
    /// </summary>
    public static Tensor Sum(Tensor hidden, Tensor weight, Tensor targets, ScalarType? matmulDType, long chunkRows, RowKernel kernel)
    {
        using var scope = NewDisposeScope();
        var x = hidden.reshape(-1, hidden.shape[^1]);
        var t = targets.reshape(-1).contiguous();
        long n = x.shape[0], d = x.shape[1];
        var needX = is_grad_enabled() && x.requires_grad;
        var needW = is_grad_enabled() && weight.requires_grad;
        var lossRows = empty(n, dtype: ScalarType.Float32, device: x.device);
        Tensor? gx = null, gw = null;
        using (no_grad())
        {
            var dt = matmulDType ?? ScalarType.Float32;
            var xd = x.detach().to(dt);
            // The head padded with zero rows to a multiple of 64 tokens: with an odd vocabulary (GPT-2's 50,257) the
            // logits' row length is misaligned and cuBLAS falls back to kernels several times slower. The padded
            // logits are exactly zero, get no share of the softmax and contribute nothing to either gradient.
            long v = weight.shape[0], padded = (v + VocabAlignment - 1) / VocabAlignment * VocabAlignment;
            // A head already aligned and stored in the matmul dtype (a frozen bf16 base) is read in place, not copied.
            Tensor wd;
            if (padded == v && weight.dtype == dt) wd = weight.detach();
            else
            {
                wd = zeros(padded, d, dtype: dt, device: weight.device);
                wd.narrow(0, 0, v).copy_(weight.detach());
            }
            if (needX) gx = empty(n, d, dtype: x.dtype, device: x.device);
            if (needW) gw = zeros(weight.shape, dtype: weight.dtype, device: weight.device);
            // Chunks of equal size, none larger than chunkRows.
            var chunks = Math.Max(1, (n + chunkRows - 1) / chunkRows);
            var rows = Math.Max(1, (n + chunks - 1) / chunks);
            for (long start = 0; start < n; start += rows)
            {
                using var chunk = NewDisposeScope();
                var len = Math.Min(rows, n - start);
                var xc = xd.narrow(0, start, len);
                var logits = xc.matmul(wd.t());
                kernel(padded == v ? logits : logits.narrow(1, 0, v), t.narrow(0, start, len), lossRows.narrow(0, start, len));
                gx?.narrow(0, start, len).copy_(logits.matmul(wd));
                gw?.add_(logits.t().matmul(xc).narrow(0, 0, v));
            }
        }
        var loss = lossRows.sum();
        if (gx is null && gw is null) return scope.MoveToOuter(loss);
        // d/dx sum(x * gx) = gx: a term of value zero that hands the precomputed gradients to autograd.
        Tensor? surrogate = null;
        if (gx is not null) surrogate = x.mul(gx).sum();
        if (gw is not null) surrogate = surrogate is null ? weight.mul(gw).sum() : surrogate + weight.mul(gw).sum();
        return scope.MoveToOuter(loss + (surrogate! - surrogate!.detach()));
    }

    /// <summary>The row kernel in TorchSharp operations: logsumexp in float32, gradient written back in the logits' dtype.</summary>
    public static void TorchRows(Tensor logits, Tensor targets, Tensor loss)
    {
        using var scope = NewDisposeScope();
        var lf = logits.to(ScalarType.Float32);
        var valid = targets.ge(0);
        var index = targets.clamp_min(0).unsqueeze(1);
        var lse = lf.logsumexp(-1, keepdim: true);
        loss.copy_((lse.squeeze(1) - lf.gather(1, index).squeeze(1)).mul(valid));
        var grad = lf.sub(lse).exp_();
        grad.scatter_add_(1, index, full(index.shape, -1f, dtype: ScalarType.Float32, device: logits.device));
        logits.copy_(grad.mul_(valid.unsqueeze(1)));
    }
}

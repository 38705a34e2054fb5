// Fused CUDA kernels of the engine. Compiled to PTX for sm_90 on a machine with the CUDA toolkit
// (services/Engine/Kernels/build-ptx.sh); the PTX is committed beside this file, embedded in the assembly
// and loaded at run time through the CUDA driver API (EngineKernels.cs), so neither the build nor the CPU
// path needs nvcc. Every kernel runs on the legacy default stream, the one TorchSharp's libtorch uses.
#include <cuda_bf16.h>
#include <math_constants.h>

// AdamW (decoupled weight decay, torch.optim.AdamW's arithmetic) over one flat fp32 buffer in one launch:
// elements [0, decayEnd) are decayed, the rest (biases, norms) are not. Gradient clipping is folded in:
// the gradients are scaled by min(1, maxNorm / (*gradNorm + 1e-6)) as they are read (gradNorm may be null).
// stepSize = lr / (1 - beta1^t), bc2Sqrt = sqrt(1 - beta2^t).
__device__ __forceinline__ float adamw_one(float p, float g, float& m, float& v, bool decay, float decayFactor,
                                           float beta1, float beta2, float eps, float stepSize, float bc2Sqrt)
{
    if (decay) p *= decayFactor;
    m = m + (1.f - beta1) * (g - m); // torch's lerp_ for weights below 0.5
    v = beta2 * v + (1.f - beta2) * g * g;
    return p - stepSize * m / (sqrtf(v) / bc2Sqrt + eps);
}

extern "C" __global__ void __launch_bounds__(256) adamw_flat(
    float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m, float* __restrict__ v,
    long long n, long long decayEnd, const float* __restrict__ gradNorm, float maxNorm,
    float decayFactor, float beta1, float beta2, float eps, float stepSize, float bc2Sqrt)
{
    float coef = 1.f;
    if (gradNorm != nullptr && maxNorm > 0.f) coef = fminf(1.f, maxNorm / (*gradNorm + 1e-6f));
    const long long stride = (long long)gridDim.x * blockDim.x;
    const long long first = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const bool aligned = ((reinterpret_cast<unsigned long long>(p) | reinterpret_cast<unsigned long long>(g)
                          | reinterpret_cast<unsigned long long>(m) | reinterpret_cast<unsigned long long>(v)) & 15ull) == 0;
    long long done = 0;
    if (aligned) {
        const long long n4 = n / 4;
        float4* p4 = reinterpret_cast<float4*>(p);
        const float4* g4 = reinterpret_cast<const float4*>(g);
        float4* m4 = reinterpret_cast<float4*>(m);
        float4* v4 = reinterpret_cast<float4*>(v);
        for (long long i = first; i < n4; i += stride) {
            float4 pp = p4[i], gg = g4[i], mm = m4[i], vv = v4[i];
            const long long e = 4 * i;
            pp.x = adamw_one(pp.x, gg.x * coef, mm.x, vv.x, e + 0 < decayEnd, decayFactor, beta1, beta2, eps, stepSize, bc2Sqrt);
            pp.y = adamw_one(pp.y, gg.y * coef, mm.y, vv.y, e + 1 < decayEnd, decayFactor, beta1, beta2, eps, stepSize, bc2Sqrt);
            pp.z = adamw_one(pp.z, gg.z * coef, mm.z, vv.z, e + 2 < decayEnd, decayFactor, beta1, beta2, eps, stepSize, bc2Sqrt);
            pp.w = adamw_one(pp.w, gg.w * coef, mm.w, vv.w, e + 3 < decayEnd, decayFactor, beta1, beta2, eps, stepSize, bc2Sqrt);
            p4[i] = pp; m4[i] = mm; v4[i] = vv;
        }
        done = n4 * 4;
    }
    for (long long i = done + first; i < n; i += stride) {
        float mm = m[i], vv = v[i];
        p[i] = adamw_one(p[i], g[i] * coef, mm, vv, i < decayEnd, decayFactor, beta1, beta2, eps, stepSize, bc2Sqrt);
        m[i] = mm; v[i] = vv;
    }
}

// Combines two (max, sum of exp(x - max)) pairs.
__device__ __forceinline__ void lse_combine(float& m, float& s, float om, float os)
{
    const float nm = fmaxf(m, om);
    s = nm == -CUDART_INF_F ? 0.f : s * expf(m - nm) + os * expf(om - nm);
    m = nm;
}

// Cross-entropy over the vocabulary, forward and backward at once, one block per row of a [rows, vocab]
// bf16 logits chunk (rows rowStride elements apart): loss[row] = logsumexp(x) - x[target], and the row is
// overwritten with d loss / d x = softmax(x) - onehot(target), in bf16, ready for the two matmuls of the
// backward pass. Rows whose target is negative (ignore_index) get loss 0 and a zero gradient.
extern "C" __global__ void __launch_bounds__(1024) cross_entropy_bf16(
    __nv_bfloat16* __restrict__ logits, long long rowStride, const long long* __restrict__ targets,
    float* __restrict__ loss, int vocab)
{
    __shared__ float warpMax[32], warpSum[32];
    __shared__ float rowLse;
    const long long row = blockIdx.x;
    __nv_bfloat16* x = logits + row * rowStride;
    const long long t = targets[row];
    if (t < 0 || t >= vocab) {
        const __nv_bfloat16 zero = __float2bfloat16(0.f);
        for (int j = threadIdx.x; j < vocab; j += blockDim.x) x[j] = zero;
        if (threadIdx.x == 0) loss[row] = 0.f;
        return;
    }
    // Read before the second pass overwrites the row (that pass starts after the barriers below).
    const float targetLogit = threadIdx.x == 0 ? __bfloat162float(x[t]) : 0.f;
    float m = -CUDART_INF_F, s = 0.f;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
        const float xj = __bfloat162float(x[j]);
        if (xj > m) { s = s * expf(m - xj) + 1.f; m = xj; }
        else s += expf(xj - m);
    }
    for (int o = 16; o > 0; o >>= 1)
        lse_combine(m, s, __shfl_xor_sync(0xffffffffu, m, o), __shfl_xor_sync(0xffffffffu, s, o));
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (lane == 0) { warpMax[warp] = m; warpSum[warp] = s; }
    __syncthreads();
    if (warp == 0) {
        const int warps = blockDim.x >> 5;
        m = lane < warps ? warpMax[lane] : -CUDART_INF_F;
        s = lane < warps ? warpSum[lane] : 0.f;
        for (int o = 16; o > 0; o >>= 1)
            lse_combine(m, s, __shfl_xor_sync(0xffffffffu, m, o), __shfl_xor_sync(0xffffffffu, s, o));
        if (lane == 0) rowLse = m + logf(s);
    }
    __syncthreads();
    const float lse = rowLse;
    if (threadIdx.x == 0) loss[row] = lse - targetLogit;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
        float p = __expf(__bfloat162float(x[j]) - lse);
        if (j == t) p -= 1.f;
        x[j] = __float2bfloat16(p);
    }
}

// ---- Batch-1 decoding of GPT-2 in fp32 (Generation/Gpt2Decoder.cs): the work between the cuBLAS matmuls of one
// decode step, one launch each, on buffers allocated once per generation. A step is launch-bound (about 50
// launches instead of about 300 TorchSharp calls), not bandwidth-bound.

// Sum (or max) over the block, blockDim.x a multiple of 32 (at most 1024); every thread gets the result.
__device__ __forceinline__ float block_reduce(float v, float* scratch, bool isMax)
{
    for (int o = 16; o > 0; o >>= 1) {
        const float w = __shfl_xor_sync(0xffffffffu, v, o);
        v = isMax ? fmaxf(v, w) : v + w;
    }
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    __syncthreads(); // the scratch of an earlier reduction is read by every warp before it is overwritten
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : (isMax ? -CUDART_INF_F : 0.f);
    for (int o = 16; o > 0; o >>= 1) {
        const float w = __shfl_xor_sync(0xffffffffu, v, o);
        v = isMax ? fmaxf(v, w) : v + w;
    }
    return v;
}

// h = x + a, y = layer_norm(h) * gamma + beta over rows of n elements, one block per row (dynamic shared memory:
// n floats). With ids: x is the embedding table and a the position table, h = x[ids[row]] + a[position] (the
// decoder's input), position = positions[row], or pos when positions is null. a may be null (h = x); hOut, when
// given, receives h and may be x itself (an in-place residual add).
extern "C" __global__ void __launch_bounds__(1024) decode_add_layer_norm(
    const float* x, const float* __restrict__ a, float* hOut, float* __restrict__ y,
    const float* __restrict__ gamma, const float* __restrict__ beta, int n, float eps,
    const long long* __restrict__ ids, const long long* __restrict__ positions, long long pos)
{
    extern __shared__ float h[];
    __shared__ float scratch[32];
    const long long row = blockIdx.x, at = positions != nullptr ? positions[row] : pos;
    const float* xr = ids != nullptr ? x + ids[row] * (long long)n : x + row * n;
    const float* ar = a == nullptr ? nullptr : ids != nullptr ? a + at * (long long)n : a + row * n;
    if (hOut != nullptr) hOut += row * n;
    y += row * n;
    float s = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = xr[i] + (ar != nullptr ? ar[i] : 0.f);
        h[i] = v;
        s += v;
    }
    const float mean = block_reduce(s, scratch, false) / n;
    float q = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float d = h[i] - mean;
        q += d * d;
    }
    const float rstd = rsqrtf(block_reduce(q, scratch, false) / n + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        if (hOut != nullptr) hOut[i] = h[i];
        y[i] = (h[i] - mean) * rstd * gamma[i] + beta[i];
    }
}

// GPT-2's gelu_new (the tanh approximation), in place.
extern "C" __global__ void __launch_bounds__(256) decode_gelu(float* __restrict__ x, int n)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float v = x[i];
    x[i] = 0.5f * v * (1.f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
}

// One block per head: stores position pos's key and value (from qkv = [q | k | v], each heads * dim, c_attn's
// output) in the layer's caches [heads, maxPos, dim], then writes softmax(q K^T * scale) V over positions
// 0..pos to out [heads * dim]. Dynamic shared memory: (dim + pos + 1 + blockDim.x) floats; dim divides blockDim.x.
extern "C" __global__ void __launch_bounds__(256) decode_attention(
    const float* __restrict__ qkv, float* __restrict__ kCache, float* __restrict__ vCache, float* __restrict__ out,
    int heads, int dim, int maxPos, long long pos, float scale)
{
    extern __shared__ float smem[];
    __shared__ float scratch[32];
    const int head = blockIdx.x, width = heads * dim, n = (int)pos + 1;
    float* q = smem;
    float* p = smem + dim;
    float* partial = p + n;
    float* K = kCache + (long long)head * maxPos * dim;
    float* V = vCache + (long long)head * maxPos * dim;
    for (int d = threadIdx.x; d < dim; d += blockDim.x) {
        q[d] = qkv[head * dim + d];
        K[pos * dim + d] = qkv[width + head * dim + d];
        V[pos * dim + d] = qkv[2 * width + head * dim + d];
    }
    __syncthreads();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    for (int t = warp; t < n; t += warps) {
        float s = 0.f;
        for (int d = lane; d < dim; d += 32) s += q[d] * K[(long long)t * dim + d];
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane == 0) p[t] = s * scale;
    }
    __syncthreads();
    float m = -CUDART_INF_F;
    for (int t = threadIdx.x; t < n; t += blockDim.x) m = fmaxf(m, p[t]);
    m = block_reduce(m, scratch, true);
    float l = 0.f;
    for (int t = threadIdx.x; t < n; t += blockDim.x) {
        const float e = __expf(p[t] - m);
        p[t] = e;
        l += e;
    }
    l = block_reduce(l, scratch, false); // its barriers also publish p
    const int groups = blockDim.x / dim, d = threadIdx.x % dim, g = threadIdx.x / dim;
    float acc = 0.f;
    if (g < groups)
        for (int t = g; t < n; t += groups) acc += p[t] * V[(long long)t * dim + d];
    partial[threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.x < dim) {
        float s = 0.f;
        for (int k = 0; k < groups; k++) s += partial[k * dim + threadIdx.x];
        out[head * dim + threadIdx.x] = s / l;
    }
}

// Batched decoding over the paged cache (PagedKvCache: per layer one pool [rows, heads * dim], a row per position of
// a sequence). Block (head, b): stores sequence b's new key and value (from qkv row b = [q | k | v]) in pool row
// writeRows[b], then attends over its rows gatherRows[b * keys + t], t <= positions[b], into out row b.
// Dynamic shared memory: (dim + keys + blockDim.x) floats; dim divides blockDim.x.
extern "C" __global__ void __launch_bounds__(256) decode_attention_paged(
    const float* __restrict__ qkv, float* __restrict__ kPool, float* __restrict__ vPool, float* __restrict__ out,
    const long long* __restrict__ writeRows, const long long* __restrict__ gatherRows, const long long* __restrict__ positions,
    int heads, int dim, int keys, float scale)
{
    extern __shared__ float smem[];
    __shared__ float scratch[32];
    const int head = blockIdx.x, b = blockIdx.y, width = heads * dim, n = (int)positions[b] + 1;
    const float* qr = qkv + (long long)b * 3 * width;
    float* q = smem;
    float* p = smem + dim;
    float* partial = p + keys;
    const long long* rows = gatherRows + (long long)b * keys;
    const long long w = writeRows[b] * width + head * dim;
    for (int d = threadIdx.x; d < dim; d += blockDim.x) {
        q[d] = qr[head * dim + d];
        kPool[w + d] = qr[width + head * dim + d];
        vPool[w + d] = qr[2 * width + head * dim + d];
    }
    __syncthreads();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    for (int t = warp; t < n; t += warps) {
        const float* K = kPool + rows[t] * width + head * dim;
        float s = 0.f;
        for (int d = lane; d < dim; d += 32) s += q[d] * K[d];
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane == 0) p[t] = s * scale;
    }
    __syncthreads();
    float m = -CUDART_INF_F;
    for (int t = threadIdx.x; t < n; t += blockDim.x) m = fmaxf(m, p[t]);
    m = block_reduce(m, scratch, true);
    float l = 0.f;
    for (int t = threadIdx.x; t < n; t += blockDim.x) {
        const float e = __expf(p[t] - m);
        p[t] = e;
        l += e;
    }
    l = block_reduce(l, scratch, false); // its barriers also publish p
    const int groups = blockDim.x / dim, d = threadIdx.x % dim, g = threadIdx.x / dim;
    float acc = 0.f;
    if (g < groups)
        for (int t = g; t < n; t += groups) acc += p[t] * vPool[rows[t] * width + head * dim + d];
    partial[threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.x < dim) {
        float s = 0.f;
        for (int k = 0; k < groups; k++) s += partial[k * dim + threadIdx.x];
        out[(long long)b * width + head * dim + threadIdx.x] = s / l;
    }
}

// Greedy pick over float32 logits [rows, vocab], one block per row: the first index of the maximum (as torch.argmax)
// and its log-softmax, as doubles in result[2 * row ..] (one copy to the host), the index also in nextId[row].
extern "C" __global__ void __launch_bounds__(1024) decode_greedy(
    const float* __restrict__ logits, int vocab, double* __restrict__ result, long long* __restrict__ nextId)
{
    __shared__ float warpMax[32], warpSum[32];
    __shared__ int warpIdx[32];
    const long long row = blockIdx.x;
    logits += row * vocab;
    result += 2 * row;
    nextId += row;
    float m = -CUDART_INF_F, s = 0.f;
    int idx = 0x7fffffff;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
        const float xj = logits[j];
        if (xj > m) { s = s * expf(m - xj) + 1.f; m = xj; idx = j; }
        else s += expf(xj - m);
    }
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int o = 16; o > 0; o >>= 1) {
        const float om = __shfl_xor_sync(0xffffffffu, m, o), os = __shfl_xor_sync(0xffffffffu, s, o);
        const int oi = __shfl_xor_sync(0xffffffffu, idx, o);
        if (om > m || (om == m && oi < idx)) idx = oi;
        lse_combine(m, s, om, os);
    }
    if (lane == 0) { warpMax[warp] = m; warpSum[warp] = s; warpIdx[warp] = idx; }
    __syncthreads();
    if (warp == 0) {
        const int warps = blockDim.x >> 5;
        m = lane < warps ? warpMax[lane] : -CUDART_INF_F;
        s = lane < warps ? warpSum[lane] : 0.f;
        idx = lane < warps ? warpIdx[lane] : 0x7fffffff;
        for (int o = 16; o > 0; o >>= 1) {
            const float om = __shfl_xor_sync(0xffffffffu, m, o), os = __shfl_xor_sync(0xffffffffu, s, o);
            const int oi = __shfl_xor_sync(0xffffffffu, idx, o);
            if (om > m || (om == m && oi < idx)) idx = oi;
            lse_combine(m, s, om, os);
        }
        if (lane == 0) {
            result[0] = (double)idx;
            result[1] = (double)(-logf(s));
            nextId[0] = idx;
        }
    }
}

// ---- LoRA training of Llama-family models (Models/FusedOps.cs): the elementwise chains that eager libtorch runs as
// several kernels each, forward and backward, for a frozen RMSNorm weight and the SwiGLU product.

// RMSNorm, one block per row of n: y = bf16(weight * (x * rstd)), rstd = rsqrt(mean(x^2) + eps), x fp32; rstd saved.
extern "C" __global__ void __launch_bounds__(1024) rms_norm_fwd(
    const float* __restrict__ x, const float* __restrict__ weight, __nv_bfloat16* __restrict__ y, float* __restrict__ rstd,
    int n, float eps)
{
    __shared__ float scratch[32];
    const long long row = blockIdx.x;
    const float* xr = x + row * n;
    float s = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += xr[i] * xr[i];
    const float r = rsqrtf(block_reduce(s, scratch, false) / n + eps);
    if (threadIdx.x == 0) rstd[row] = r;
    __nv_bfloat16* yr = y + row * n;
    for (int i = threadIdx.x; i < n; i += blockDim.x) yr[i] = __float2bfloat16(weight[i] * (xr[i] * r));
}

// Its input gradient (the weight is frozen): g = dy * weight, dx = rstd * g - x * rstd^3 * mean(g * x).
extern "C" __global__ void __launch_bounds__(1024) rms_norm_bwd(
    const __nv_bfloat16* __restrict__ dy, const float* __restrict__ x, const float* __restrict__ weight,
    const float* __restrict__ rstd, float* __restrict__ dx, int n)
{
    __shared__ float scratch[32];
    const long long row = blockIdx.x;
    const float* xr = x + row * n;
    const __nv_bfloat16* dyr = dy + row * n;
    float s = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += __bfloat162float(dyr[i]) * weight[i] * xr[i];
    const float r = rstd[row];
    const float c = r * r * r * block_reduce(s, scratch, false) / n;
    float* dxr = dx + row * n;
    for (int i = threadIdx.x; i < n; i += blockDim.x) dxr[i] = r * __bfloat162float(dyr[i]) * weight[i] - c * xr[i];
}

__device__ __forceinline__ float silu_f(float g) { return g / (1.f + __expf(-g)); }

// SwiGLU's product h = silu(g) * u over n bf16 elements (n even; two at a time).
extern "C" __global__ void __launch_bounds__(256) silu_mul_fwd(
    const __nv_bfloat162* __restrict__ g, const __nv_bfloat162* __restrict__ u, __nv_bfloat162* __restrict__ h, long long pairs)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < pairs; i += (long long)gridDim.x * blockDim.x) {
        const float2 gg = __bfloat1622float2(g[i]), uu = __bfloat1622float2(u[i]);
        h[i] = __floats2bfloat162_rn(silu_f(gg.x) * uu.x, silu_f(gg.y) * uu.y);
    }
}

// Its gradients: du = dh * silu(g), dg = dh * u * s * (1 + g * (1 - s)) with s = sigmoid(g).
extern "C" __global__ void __launch_bounds__(256) silu_mul_bwd(
    const __nv_bfloat162* __restrict__ dh, const __nv_bfloat162* __restrict__ g, const __nv_bfloat162* __restrict__ u,
    __nv_bfloat162* __restrict__ dg, __nv_bfloat162* __restrict__ du, long long pairs)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < pairs; i += (long long)gridDim.x * blockDim.x) {
        const float2 d = __bfloat1622float2(dh[i]), gg = __bfloat1622float2(g[i]), uu = __bfloat1622float2(u[i]);
        const float sx = 1.f / (1.f + __expf(-gg.x)), sy = 1.f / (1.f + __expf(-gg.y));
        du[i] = __floats2bfloat162_rn(d.x * gg.x * sx, d.y * gg.y * sy);
        dg[i] = __floats2bfloat162_rn(d.x * uu.x * sx * (1.f + gg.x * (1.f - sx)), d.y * uu.y * sy * (1.f + gg.y * (1.f - sy)));
    }
}

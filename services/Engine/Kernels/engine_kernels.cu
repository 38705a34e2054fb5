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

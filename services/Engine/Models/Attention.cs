using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace AspireTune.Engine.Models;

internal static class Attention
{
    /// <summary>
    /// Scaled dot-product attention over [B, H, T, D] queries and [B, Hkv, S, D] keys/values, causal with
    /// the cache offset, optionally masking padded keys (<paramref name="keyMask"/> [B, S], 1 = real token).
    /// A four-dimensional <paramref name="keyMask"/> is the whole boolean mask [B, 1, T, S] (true = may attend),
    /// used as it is: packed sequences pass their block-diagonal causal mask this way.
    /// </summary>
    public static Tensor Run(Tensor q, Tensor k, Tensor v, Tensor? keyMask, double dropout, bool training)
    {
        var heads = q.shape[1];
        var kvHeads = k.shape[1];
        if (kvHeads != heads)
        {
            // SDPA in TorchSharp 0.107 has no enable_gqa: expand the shared heads.
            k = k.repeat_interleave(heads / kvHeads, dim: 1);
            v = v.repeat_interleave(heads / kvHeads, dim: 1);
        }
        var t = q.shape[2];
        var s = k.shape[2];
        var p = training ? dropout : 0.0;
        if (keyMask is not null && keyMask.dim() == 4)
            return F.scaled_dot_product_attention(q, k, v, keyMask, p);
        if (keyMask is null && t == s)
            return F.scaled_dot_product_attention(q, k, v, p: p, is_casual: true);
        if (keyMask is null && t == 1)
            return F.scaled_dot_product_attention(q, k, v, p: p);
        using var qi = arange(s - t, s, device: q.device).unsqueeze(1);
        using var kj = arange(0, s, device: q.device).unsqueeze(0);
        var mask = kj.le(qi).unsqueeze(0).unsqueeze(0); // [1, 1, T, S]
        if (keyMask is not null)
            mask = mask.logical_and(keyMask.to(ScalarType.Bool).unsqueeze(1).unsqueeze(1)); // [B, 1, T, S]
        return F.scaled_dot_product_attention(q, k, v, mask, p);
    }
}

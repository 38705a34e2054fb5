using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace AspireTune.Engine.Models;

internal sealed class Gpt2Attention : nn.Module<Tensor, Tensor>
{
    private readonly ModelConfig _c;
    private readonly RunSettings _run;
    public readonly Projection c_attn;
    public readonly Projection c_proj;

    public Gpt2Attention(ModelConfig c, RunSettings run) : base("attn")
    {
        _c = c;
        _run = run;
        c_attn = new Projection("c_attn", c.HiddenSize, 3 * c.HiddenSize, true, true, run);
        c_proj = new Projection("c_proj", c.HiddenSize, c.HiddenSize, true, true, run);
        register_module("c_attn", c_attn);
        register_module("c_proj", c_proj);
    }

    public override Tensor forward(Tensor x) => Forward(x, null, null, 0);

    public Tensor Forward(Tensor x, Tensor? keyMask, IKvStore? cache, int layer)
    {
        long b = x.shape[0], t = x.shape[1];
        int h = _c.NumHeads, d = _c.HeadSize;
        // unbind, not three selects: its backward is one stack instead of three zero-filled [3, B, H, T, D] tensors.
        var qkv = c_attn.forward(x).view(b, t, 3, h, d).permute(2, 0, 3, 1, 4).unbind(0); // 3 x [B, H, T, D]
        Tensor q = qkv[0], k = qkv[1], v = qkv[2];
        if (cache is not null) (k, v) = cache.Append(layer, k, v);
        var o = Attention.Run(q, k, v, keyMask, _run.AttentionDropout, training);
        return c_proj.forward(o.transpose(1, 2).reshape(b, t, h * d));
    }
}

internal sealed class Gpt2Mlp : nn.Module<Tensor, Tensor>
{
    public readonly Projection c_fc;
    public readonly Projection c_proj;

    public Gpt2Mlp(ModelConfig c, RunSettings run) : base("mlp")
    {
        c_fc = new Projection("c_fc", c.HiddenSize, c.IntermediateSize, true, true, run);
        c_proj = new Projection("c_proj", c.IntermediateSize, c.HiddenSize, true, true, run);
        register_module("c_fc", c_fc);
        register_module("c_proj", c_proj);
    }

    public override Tensor forward(Tensor x) => c_proj.forward(F.gelu(c_fc.forward(x), TorchSharp.Modules.GELU.Approximate.tanh));
}

internal sealed class Gpt2Block : nn.Module<Tensor, Tensor>
{
    private readonly RunSettings _run;
    public readonly LayerNorm ln_1;
    public readonly Gpt2Attention attn;
    public readonly LayerNorm ln_2;
    public readonly Gpt2Mlp mlp;

    public Gpt2Block(ModelConfig c, RunSettings run) : base("block")
    {
        _run = run;
        ln_1 = new LayerNorm("ln_1", c.HiddenSize, c.NormEpsilon);
        attn = new Gpt2Attention(c, run);
        ln_2 = new LayerNorm("ln_2", c.HiddenSize, c.NormEpsilon);
        mlp = new Gpt2Mlp(c, run);
        register_module("ln_1", ln_1);
        register_module("attn", attn);
        register_module("ln_2", ln_2);
        register_module("mlp", mlp);
    }

    public override Tensor forward(Tensor x) => Forward(x, null, null, 0);

    public Tensor Forward(Tensor x, Tensor? keyMask, IKvStore? cache, int layer)
    {
        // A scope per block frees this block's temporaries that autograd does not keep, as soon as it ends.
        using var scope = NewDisposeScope();
        var a = attn.Forward(ln_1.forward(x), keyMask, cache, layer);
        var h = x + Drop(a);
        var y = h + Drop(mlp.forward(ln_2.forward(h)));
        return scope.MoveToOuter(y);
    }

    private Tensor Drop(Tensor t) => training && _run.ResidualDropout > 0 ? F.dropout(t, _run.ResidualDropout, true) : t;
}

internal sealed class Gpt2Transformer : nn.Module<Tensor, Tensor>
{
    public readonly Embedding wte;
    public readonly Embedding wpe;
    public readonly ModuleList<Gpt2Block> h;
    public readonly LayerNorm ln_f;

    public Gpt2Transformer(ModelConfig c, RunSettings run) : base("transformer")
    {
        wte = new Embedding("wte", c.VocabSize, c.HiddenSize, run);
        wpe = new Embedding("wpe", c.MaxPositions, c.HiddenSize, run);
        h = new ModuleList<Gpt2Block>([.. Enumerable.Range(0, c.NumLayers).Select(_ => new Gpt2Block(c, run))]);
        ln_f = new LayerNorm("ln_f", c.HiddenSize, c.NormEpsilon);
        register_module("wte", wte);
        register_module("wpe", wpe);
        register_module("h", h);
        register_module("ln_f", ln_f);
    }

    public override Tensor forward(Tensor x) => throw new NotSupportedException();
}

/// <summary>GPT2LMHeadModel with the head tied to <c>transformer.wte</c>.</summary>
internal sealed class Gpt2Network : DecoderNetwork
{
    public readonly Gpt2Transformer transformer;
    public readonly HeadHolder? lm_head;

    public Gpt2Network(ModelConfig c, ScalarType? frozenMatrices) : base("GPT2LMHeadModel", c, frozenMatrices)
    {
        transformer = new Gpt2Transformer(c, Settings);
        register_module("transformer", transformer);
        if (!c.TieWordEmbeddings)
        {
            lm_head = new HeadHolder(c.VocabSize, c.HiddenSize, Settings);
            register_module("lm_head", lm_head);
        }
    }

    public override Tensor Hidden(Tensor ids, Tensor? attentionMask, IKvStore? cache, Tensor? positions = null)
    {
        var past = cache?.Length ?? 0;
        long t = ids.shape[1];
        if (past + t > Config.MaxPositions)
            throw new ArgumentException($"sequence of {past + t} tokens exceeds the model's {Config.MaxPositions} positions");
        using var pos = positions?.alias() ?? arange(past, past + t, dtype: ScalarType.Int64, device: ids.device).unsqueeze(0);
        var x = transformer.wte.forward(ids) + transformer.wpe.forward(pos);
        if (training && Settings.EmbeddingDropout > 0) x = F.dropout(x, Settings.EmbeddingDropout, true);
        for (var i = 0; i < transformer.h.Count; i++)
            x = transformer.h[i].Forward(x, attentionMask, cache, i);
        return transformer.ln_f.forward(x);
    }

    public override Tensor HeadWeight => (Tensor?)lm_head?.weight ?? transformer.wte.weight;

    protected override IEnumerable<WeightMatrix> Tables() =>
        lm_head is null ? [transformer.wte, transformer.wpe] : [transformer.wte, transformer.wpe, lm_head];

    public override IEnumerable<(string, Projection)> Projections()
    {
        foreach (var b in transformer.h)
        {
            yield return ("c_attn", b.attn.c_attn);
            yield return ("c_proj", b.attn.c_proj);
            yield return ("c_fc", b.mlp.c_fc);
            yield return ("c_proj", b.mlp.c_proj);
        }
    }

    public override bool IsIgnorable(string name) =>
        name.EndsWith(".attn.bias", StringComparison.Ordinal) || name.EndsWith(".attn.masked_bias", StringComparison.Ordinal)
        || (Config.TieWordEmbeddings && name == "lm_head.weight");

    public override string Canonical(string name) =>
        name.StartsWith("transformer.", StringComparison.Ordinal) || name.StartsWith("lm_head.", StringComparison.Ordinal)
            ? name : "transformer." + name;

    public override void InitializeWeights()
    {
        const double std = 0.02;
        Normal(transformer.wte.weight, std);
        Normal(transformer.wpe.weight, std);
        foreach (var b in transformer.h)
        {
            Normal(b.attn.c_attn.weight, std);
            Normal(b.mlp.c_fc.weight, std);
            // GPT-2 scales the residual projections by 1/sqrt(2 * n_layer).
            Normal(b.attn.c_proj.weight, std / Math.Sqrt(2.0 * Config.NumLayers));
            Normal(b.mlp.c_proj.weight, std / Math.Sqrt(2.0 * Config.NumLayers));
        }
        if (lm_head is not null) Normal(lm_head.weight, std);
    }
}

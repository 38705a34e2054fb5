using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace AspireTune.Engine.Models;

internal sealed class LlamaAttention : nn.Module<Tensor, Tensor>
{
    private readonly ModelConfig _c;
    private readonly RunSettings _run;
    public readonly Projection q_proj;
    public readonly Projection k_proj;
    public readonly Projection v_proj;
    public readonly Projection o_proj;

    public LlamaAttention(ModelConfig c, RunSettings run) : base("self_attn")
    {
        _c = c;
        _run = run;
        int d = c.HeadSize;
        q_proj = new Projection("q_proj", c.HiddenSize, c.NumHeads * d, c.AttentionBias, false, run);
        k_proj = new Projection("k_proj", c.HiddenSize, c.KvHeads * d, c.AttentionBias, false, run);
        v_proj = new Projection("v_proj", c.HiddenSize, c.KvHeads * d, c.AttentionBias, false, run);
        o_proj = new Projection("o_proj", c.NumHeads * d, c.HiddenSize, c.OutputBias, false, run);
        register_module("q_proj", q_proj);
        register_module("k_proj", k_proj);
        register_module("v_proj", v_proj);
        register_module("o_proj", o_proj);
    }

    public override Tensor forward(Tensor x) => throw new NotSupportedException();

    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor? keyMask, IKvStore? cache, int layer)
    {
        long b = x.shape[0], t = x.shape[1];
        int d = _c.HeadSize;
        var q = q_proj.forward(x).view(b, t, _c.NumHeads, d).transpose(1, 2);
        var k = k_proj.forward(x).view(b, t, _c.KvHeads, d).transpose(1, 2);
        var v = v_proj.forward(x).view(b, t, _c.KvHeads, d).transpose(1, 2);
        (q, k) = (Rope.Apply(q, cos, sin), Rope.Apply(k, cos, sin));
        if (cache is not null) (k, v) = cache.Append(layer, k, v);
        var o = Attention.Run(q, k, v, keyMask, _run.AttentionDropout, training);
        return o_proj.forward(o.transpose(1, 2).reshape(b, t, _c.NumHeads * d));
    }
}

internal sealed class LlamaMlp : nn.Module<Tensor, Tensor>
{
    public readonly Projection gate_proj;
    public readonly Projection up_proj;
    public readonly Projection down_proj;

    private readonly RunSettings _run;

    public LlamaMlp(ModelConfig c, RunSettings run) : base("mlp")
    {
        _run = run;
        gate_proj = new Projection("gate_proj", c.HiddenSize, c.IntermediateSize, c.MlpBias, false, run);
        up_proj = new Projection("up_proj", c.HiddenSize, c.IntermediateSize, c.MlpBias, false, run);
        down_proj = new Projection("down_proj", c.IntermediateSize, c.HiddenSize, c.MlpBias, false, run);
        register_module("gate_proj", gate_proj);
        register_module("up_proj", up_proj);
        register_module("down_proj", down_proj);
    }

    public override Tensor forward(Tensor x)
    {
        Tensor g = gate_proj.forward(x), u = up_proj.forward(x);
        var h = training && FusedSiluMul.Applies(_run, g, u) ? FusedSiluMul.Apply(g, u) : F.silu(g) * u;
        return down_proj.forward(h);
    }
}

internal sealed class LlamaLayer : nn.Module<Tensor, Tensor>
{
    private readonly RunSettings _run;
    public readonly LlamaAttention self_attn;
    public readonly LlamaMlp mlp;
    public readonly RmsNorm input_layernorm;
    public readonly RmsNorm post_attention_layernorm;

    public LlamaLayer(ModelConfig c, RunSettings run) : base("layer")
    {
        _run = run;
        self_attn = new LlamaAttention(c, run);
        mlp = new LlamaMlp(c, run);
        input_layernorm = new RmsNorm("input_layernorm", c.HiddenSize, c.NormEpsilon, run);
        post_attention_layernorm = new RmsNorm("post_attention_layernorm", c.HiddenSize, c.NormEpsilon, run);
        register_module("self_attn", self_attn);
        register_module("mlp", mlp);
        register_module("input_layernorm", input_layernorm);
        register_module("post_attention_layernorm", post_attention_layernorm);
    }

    public override Tensor forward(Tensor x) => throw new NotSupportedException();

    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor? keyMask, IKvStore? cache, int layer)
    {
        using var scope = NewDisposeScope();
        var h = x + Drop(self_attn.Forward(ToMatmul(input_layernorm.forward(x)), cos, sin, keyMask, cache, layer));
        var y = h + Drop(mlp.forward(ToMatmul(post_attention_layernorm.forward(h))));
        return scope.MoveToOuter(y);
    }

    private Tensor Drop(Tensor t) => training && _run.ResidualDropout > 0 ? F.dropout(t, _run.ResidualDropout, true) : t;

    // One cast of the normed activations for the three (or two) projections that read them, not one each.
    private Tensor ToMatmul(Tensor t) => _run.MatmulDType is { } d && t.dtype != d ? t.to(d) : t;
}

internal sealed class LlamaBody : nn.Module<Tensor, Tensor>
{
    public readonly Embedding embed_tokens;
    public readonly ModuleList<LlamaLayer> layers;
    public readonly RmsNorm norm;

    public LlamaBody(ModelConfig c, RunSettings run) : base("model")
    {
        embed_tokens = new Embedding("embed_tokens", c.VocabSize, c.HiddenSize, run);
        layers = new ModuleList<LlamaLayer>([.. Enumerable.Range(0, c.NumLayers).Select(_ => new LlamaLayer(c, run))]);
        norm = new RmsNorm("norm", c.HiddenSize, c.NormEpsilon);
        register_module("embed_tokens", embed_tokens);
        register_module("layers", layers);
        register_module("norm", norm);
    }

    public override Tensor forward(Tensor x) => throw new NotSupportedException();
}

/// <summary>LlamaForCausalLM / Qwen2ForCausalLM / MistralForCausalLM (without sliding windows).</summary>
internal sealed class LlamaNetwork : DecoderNetwork
{
    public readonly LlamaBody model;
    public readonly HeadHolder? lm_head;
    private readonly Tensor _invFreq;

    public LlamaNetwork(ModelConfig c, ScalarType? frozenMatrices)
        : base(c.ModelType switch { "qwen2" => "Qwen2ForCausalLM", _ => "LlamaForCausalLM" }, c, frozenMatrices)
    {
        model = new LlamaBody(c, Settings);
        register_module("model", model);
        if (!c.TieWordEmbeddings)
        {
            lm_head = new HeadHolder(c.VocabSize, c.HiddenSize, Settings);
            register_module("lm_head", lm_head);
        }
        _invFreq = Rope.InverseFrequencies(c);
        register_buffer("inv_freq", _invFreq, persistent: false);
    }

    public override Tensor Hidden(Tensor ids, Tensor? attentionMask, IKvStore? cache, Tensor? positions = null)
    {
        var past = cache?.Length ?? 0;
        long t = ids.shape[1];
        using var scope = NewDisposeScope();
        // [T, D], or [B, 1, T, D] when packed sequences bring their own positions.
        var freqs = positions is null
            ? outer(arange(past, past + t, dtype: ScalarType.Float32, device: ids.device), _invFreq)
            : positions.to(ScalarType.Float32).unsqueeze(-1).mul(_invFreq).unsqueeze(1);
        var emb = cat([freqs, freqs], -1);
        var mm = Settings.MatmulDType;
        Tensor cos = emb.cos(), sin = emb.sin();
        if (mm is { } d) (cos, sin) = (cos.to(d), sin.to(d));
        var x = model.embed_tokens.forward(ids);
        if (training && Settings.EmbeddingDropout > 0) x = F.dropout(x, Settings.EmbeddingDropout, true);
        for (var i = 0; i < model.layers.Count; i++)
            x = model.layers[i].Forward(x, cos, sin, attentionMask, cache, i);
        return scope.MoveToOuter(model.norm.forward(x));
    }

    public override Tensor HeadWeight => (Tensor?)lm_head?.weight ?? model.embed_tokens.weight;

    protected override IEnumerable<WeightMatrix> Tables() => lm_head is null ? [model.embed_tokens] : [model.embed_tokens, lm_head];

    public override IEnumerable<(string, Projection)> Projections()
    {
        foreach (var l in model.layers)
        {
            yield return ("q_proj", l.self_attn.q_proj);
            yield return ("k_proj", l.self_attn.k_proj);
            yield return ("v_proj", l.self_attn.v_proj);
            yield return ("o_proj", l.self_attn.o_proj);
            yield return ("gate_proj", l.mlp.gate_proj);
            yield return ("up_proj", l.mlp.up_proj);
            yield return ("down_proj", l.mlp.down_proj);
        }
    }

    public override bool IsIgnorable(string name) =>
        name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal)
        || (Config.TieWordEmbeddings && name == "lm_head.weight");

    public override void InitializeWeights()
    {
        const double std = 0.02;
        Normal(model.embed_tokens.weight, std);
        foreach (var (_, p) in Projections()) Normal(p.weight, std);
        if (lm_head is not null) Normal(lm_head.weight, std);
    }
}

internal static class Rope
{
    /// <summary>inv_freq as transformers computes it, with the llama3 frequency scaling when configured.</summary>
    public static Tensor InverseFrequencies(ModelConfig c)
    {
        var d = c.HeadSize;
        var inv = new float[d / 2];
        for (var i = 0; i < inv.Length; i++)
            inv[i] = (float)(1.0 / Math.Pow(c.RopeTheta, (float)(2 * i) / d));
        if (c.RopeScaling is { } s)
        {
            var lowWavelen = s.OriginalMaxPositionEmbeddings / s.LowFreqFactor;
            var highWavelen = s.OriginalMaxPositionEmbeddings / s.HighFreqFactor;
            for (var i = 0; i < inv.Length; i++)
            {
                var wavelen = 2 * Math.PI / inv[i];
                double f = wavelen > lowWavelen ? inv[i] / s.Factor : inv[i];
                if (wavelen >= highWavelen && wavelen <= lowWavelen)
                {
                    var smooth = (s.OriginalMaxPositionEmbeddings / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
                    f = (1 - smooth) * f / s.Factor + smooth * f;
                }
                inv[i] = (float)f;
            }
        }
        return tensor(inv);
    }

    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        // chunk's backward is one cat; two narrows would each zero-fill a full-size gradient.
        var halves = x.chunk(2, -1);
        var rotated = cat([halves[1].neg(), halves[0]], -1);
        return x * cos + rotated * sin;
    }
}

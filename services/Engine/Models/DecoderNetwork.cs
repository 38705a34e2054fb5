using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace AspireTune.Engine.Models;

/// <summary>A decoder whose parameter names are the Hugging Face state-dict names of its family.</summary>
internal abstract class DecoderNetwork : nn.Module<Tensor, Tensor>
{
    protected DecoderNetwork(string name, ModelConfig config) : base(name)
    {
        Config = config;
        Settings = new RunSettings
        {
            EmbeddingDropout = config.EmbeddingDropout,
            AttentionDropout = config.AttentionDropout,
            ResidualDropout = config.ResidualDropout,
        };
    }

    public ModelConfig Config { get; }
    public RunSettings Settings { get; }

    /// <summary>
    /// Logits [B, T, V] for token ids [B, T]; <paramref name="attentionMask"/> [B, past + T] marks real tokens, or is
    /// the full boolean mask [B, 1, T, T] of packed sequences, whose <paramref name="positions"/> [B, T] restart at 0
    /// for every example (default: past .. past + T - 1).
    /// </summary>
    public Tensor Forward(Tensor ids, Tensor? attentionMask, KvCache? cache, Tensor? positions = null)
    {
        using var scope = NewDisposeScope();
        var x = Hidden(ids, attentionMask, cache, positions);
        var w = HeadWeight;
        var logits = Settings.MatmulDType is { } d ? F.linear(x.to(d), w.to(d)) : F.linear(x, w);
        return scope.MoveToOuter(logits);
    }

    /// <summary>The final normed hidden states [B, T, hidden] that the output head multiplies.</summary>
    public abstract Tensor Hidden(Tensor ids, Tensor? attentionMask, KvCache? cache, Tensor? positions = null);

    /// <summary>The output head's weight [V, hidden] (the token embedding when tied).</summary>
    public abstract Tensor HeadWeight { get; }

    public override Tensor forward(Tensor ids) => Forward(ids, null, null);

    /// <summary>Every dense projection with its short name (q_proj, c_attn, ...) for LoRA targeting.</summary>
    public abstract IEnumerable<(string ShortName, Projection Layer)> Projections();

    /// <summary>Names in the checkpoint that are not parameters here and are safe to ignore (buffers, tied heads).</summary>
    public abstract bool IsIgnorable(string checkpointName);

    /// <summary>Maps a checkpoint tensor name to this network's parameter name (older GPT-2 files lack the prefix).</summary>
    public virtual string Canonical(string checkpointName) => checkpointName;

    /// <summary>The initialisation transformers applies to a fresh model of this family.</summary>
    public abstract void InitializeWeights();

    protected static void Normal(Tensor t, double std)
    {
        using (no_grad()) t.normal_(0, std);
    }
}

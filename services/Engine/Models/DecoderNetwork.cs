using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace AspireTune.Engine.Models;

/// <summary>A decoder whose parameter names are the Hugging Face state-dict names of its family.</summary>
internal abstract class DecoderNetwork : nn.Module<Tensor, Tensor>
{
    /// <param name="name">The transformers class name.</param>
    /// <param name="config">The model's config.</param>
    /// <param name="frozenMatrices">Null, or the dtype in which a frozen base's matrices are created (see <see cref="RunSettings.FrozenMatrixDType"/>).</param>
    protected DecoderNetwork(string name, ModelConfig config, ScalarType? frozenMatrices) : base(name)
    {
        Config = config;
        Settings = new RunSettings
        {
            EmbeddingDropout = config.EmbeddingDropout,
            AttentionDropout = config.AttentionDropout,
            ResidualDropout = config.ResidualDropout,
            FrozenMatrixDType = frozenMatrices,
        };
    }

    public ModelConfig Config { get; }
    public RunSettings Settings { get; }

    /// <summary>
    /// Logits [B, T, V] for token ids [B, T]; <paramref name="attentionMask"/> [B, past + T] marks real tokens, or is
    /// the full boolean mask [B, 1, T, T] of packed sequences, whose <paramref name="positions"/> [B, T] restart at 0
    /// for every example (default: past .. past + T - 1).
    /// </summary>
    public Tensor Forward(Tensor ids, Tensor? attentionMask, IKvStore? cache, Tensor? positions = null)
    {
        using var scope = NewDisposeScope();
        var x = Hidden(ids, attentionMask, cache, positions);
        return scope.MoveToOuter(Head(x));
    }

    /// <summary>The output head over hidden states [..., hidden]: logits [..., V] in the matmul dtype (fp32 without one).</summary>
    public Tensor Head(Tensor x)
    {
        var d = Settings.MatmulDType ?? ScalarType.Float32;
        return F.linear(x.to(d), HeadWeight.to(d));
    }

    /// <summary>The final normed hidden states [B, T, hidden] that the output head multiplies.</summary>
    public abstract Tensor Hidden(Tensor ids, Tensor? attentionMask, IKvStore? cache, Tensor? positions = null);

    /// <summary>The output head's weight [V, hidden] (the token embedding when tied).</summary>
    public abstract Tensor HeadWeight { get; }

    public override Tensor forward(Tensor ids) => Forward(ids, null, null);

    /// <summary>Every dense projection with its short name (q_proj, c_attn, ...) for LoRA targeting.</summary>
    public abstract IEnumerable<(string ShortName, Projection Layer)> Projections();

    /// <summary>The matrices that are not projections: embedding tables and an untied head.</summary>
    protected abstract IEnumerable<WeightMatrix> Tables();

    /// <summary>
    /// Stores every frozen matrix in <paramref name="dtype"/> only, releasing its fp32 master: the base of a LoRA model
    /// is read in the matmul dtype and never updated, so the fp32 copy is pure memory (4 of every 6 bytes it held).
    /// Trainable parameters, norms and biases are left as they are.
    /// </summary>
    public void StoreFrozenMatricesIn(ScalarType dtype)
    {
        foreach (var (_, p) in Projections()) p.StoreFrozenIn(dtype);
        foreach (var t in Tables()) t.StoreFrozenIn(dtype);
    }

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

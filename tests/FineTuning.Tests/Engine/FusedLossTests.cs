using AspireTune.Engine.Models;
using static TorchSharp.torch;

namespace AspireTune.FineTuning.Tests.Engine;

/// <summary>
/// The chunked cross-entropy that the fused CUDA kernel runs in (head, softmax and head backward chunk by chunk, no
/// logits tensor for the batch) against the plain loss, here with its TorchSharp row kernel on the CPU.
/// </summary>
public sealed class FusedLossTests
{
    private static (float Loss, Dictionary<string, Tensor> Grads) LossAndGrads(CausalLm model, Tensor ids, Tensor targets, long? chunkRows)
    {
        foreach (var (_, p) in model.NamedParameters()) p.grad = null;
        var loss = chunkRows is { } rows
            ? model.LossSumChunked(ids, targets, rows, ChunkedCrossEntropy.TorchRows)
            : model.LossSum(ids, targets);
        (loss / 7).backward();
        return (loss.item<float>(), model.NamedParameters().Where(p => p.Parameter.grad is not null)
            .ToDictionary(p => p.Name, p => p.Parameter.grad!.clone()));
    }

    private static (Tensor Ids, Tensor Targets) Batch()
    {
        manual_seed(11);
        var ids = randint(0, 257, [3, 10], dtype: ScalarType.Int64);
        var targets = randint(0, 257, [3, 10], dtype: ScalarType.Int64);
        using (no_grad()) targets.index_put_(tensor(-100L), [tensor(new long[] { 0, 0, 1, 2, 2 }), tensor(new long[] { 0, 1, 4, 8, 9 })]);
        return (ids, targets);
    }

    [Theory]
    [InlineData(1L)]
    [InlineData(7L)]
    [InlineData(64L)]
    public void LossSumChunked_AnyChunkSize_EqualsPlainLossAndGradients(long chunkRows)
    {
        using var model = EngineFixtures.TinyGpt2(seed: 4, hidden: 32);
        model.SetTraining(true);
        var (ids, targets) = Batch();

        var plain = LossAndGrads(model, ids, targets, null);
        var chunked = LossAndGrads(model, ids, targets, chunkRows);

        chunked.Loss.Should().BeApproximately(plain.Loss, Math.Abs(plain.Loss) * 1e-5f);
        chunked.Grads.Keys.Should().BeEquivalentTo(plain.Grads.Keys);
        foreach (var (name, g) in plain.Grads)
        {
            var diff = (chunked.Grads[name] - g).abs().max().item<float>();
            diff.Should().BeLessThan(1e-6f + 1e-4f * g.abs().max().item<float>(), name);
        }
    }

    [Fact]
    public void LossSumChunked_FrozenHead_GivesGradientsToAdaptersOnly()
    {
        using var model = EngineFixtures.TinyGpt2(seed: 4, hidden: 32);
        model.AddLora(new LoraOptions { Rank = 2, Dropout = 0, TargetModules = ["c_attn", "c_fc"] });
        using (no_grad())
            foreach (var (name, p) in model.NamedParameters().Where(p => p.Name.Contains("lora_B", StringComparison.Ordinal)))
                p.normal_(0, 0.1);
        model.SetTraining(true);
        var (ids, targets) = Batch();

        var plain = LossAndGrads(model, ids, targets, null);
        var chunked = LossAndGrads(model, ids, targets, 4);

        chunked.Loss.Should().BeApproximately(plain.Loss, Math.Abs(plain.Loss) * 1e-5f);
        chunked.Grads.Keys.Should().OnlyContain(n => CausalLm.IsLoraName(n)).And.BeEquivalentTo(plain.Grads.Keys);
        foreach (var (name, g) in plain.Grads)
            (chunked.Grads[name] - g).abs().max().item<float>().Should().BeLessThan(1e-6f + 1e-4f * g.abs().max().item<float>(), name);
    }
}

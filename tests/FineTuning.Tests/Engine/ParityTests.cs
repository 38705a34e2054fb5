using AspireTune.Engine.Generation;
using AspireTune.Engine.Models;
using AspireTune.Engine.Training;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace AspireTune.FineTuning.Tests.Engine;

/// <summary>Outputs of checkpoints made by transformers 5.17 (tools/fixtures/make_fixtures.py) reproduced here.</summary>
public sealed class ParityTests
{
    [Theory]
    [InlineData("gpt2-tiny")]
    [InlineData("llama-tiny")]
    [InlineData("qwen2-tiny")]
    public void Load_TransformersCheckpoint_MatchesLogitsLossGradNormAndAdamWStep(string name)
    {
        var reference = EngineFixtures.Reference($"{name}/reference.json");
        using var model = CausalLm.Load(EngineFixtures.Path_(name));
        using var ids = EngineFixtures.Ids(reference["input_ids"]);

        using (no_grad())
        {
            using var logits = model.Forward(ids);
            var actual = logits.data<float>().ToArray();
            MaxAbsDiff(actual, EngineFixtures.Floats(reference["logits"])).Should().BeLessThan(1e-4f);
        }

        using var scope = NewDisposeScope();
        var trainable = model.NamedParameters().ToList();
        var adam = reference["adamw"]!;
        using var flat = new FlatParameters(trainable, adam["weight_decay"]!.GetValue<double>(), model.Device);
        using var optimizer = new FlatAdamW(flat, adam["beta1"]!.GetValue<double>(), adam["beta2"]!.GetValue<double>(), adam["eps"]!.GetValue<double>());
        var output = model.Forward(ids);
        var v = output.shape[2];
        var loss = F.cross_entropy(output[.., ..^1].reshape(-1, v), ids[.., 1..].reshape(-1));
        loss.backward();
        var gradNorm = flat.ClipGradNorm(0).item<float>();
        RelativeError(loss.item<float>(), reference["loss"]!.GetValue<double>()).Should().BeLessThan(1e-5);
        RelativeError(gradNorm, reference["grad_norm"]!.GetValue<double>()).Should().BeLessThan(1e-5);

        optimizer.Step(adam["lr"]!.GetValue<double>());
        using (no_grad())
        {
            var after = model.Forward(ids).data<float>().ToArray();
            MaxAbsDiff(after, EngineFixtures.Floats(reference["logits_after_step"])).Should().BeLessThan(1e-4f);
        }
    }

    [Theory]
    [InlineData("gpt2-tiny")]
    [InlineData("llama-tiny")]
    [InlineData("qwen2-tiny")]
    public void Generate_Greedy_MatchesTransformersGenerate(string name)
    {
        var reference = EngineFixtures.Reference($"{name}/reference.json");
        using var model = CausalLm.Load(EngineFixtures.Path_(name));
        var prompt = reference["generate_prompt"]!.AsArray().Select(x => x!.GetValue<int>()).ToList();
        var expected = reference["generate_greedy"]!.AsArray().Select(x => x!.GetValue<int>()).ToList();

        var result = new TextGenerator(model).Generate(prompt, new GenerationOptions { MaxTokens = expected.Count, StopAtEos = false },
            TestContext.Current.CancellationToken);

        result.Tokens.Select(t => t.Id).Should().Equal(expected);
        result.FinishReason.Should().Be(FinishReasons.Length);
    }

    [Fact]
    public void Load_ShardedBFloat16Checkpoint_MatchesTransformersLogits()
    {
        var reference = EngineFixtures.Reference("llama-tiny-bf16-sharded/reference.json");
        using var model = CausalLm.Load(EngineFixtures.Path_("llama-tiny-bf16-sharded"));
        using var ids = EngineFixtures.Ids(reference["input_ids"]);
        using var _ = no_grad();

        using var logits = model.Forward(ids);

        MaxAbsDiff(logits.data<float>().ToArray(), EngineFixtures.Floats(reference["logits"])).Should().BeLessThan(1e-4f);
        model.Config.RopeScaling.Should().NotBeNull();
    }

    private static float MaxAbsDiff(float[] a, float[] b)
    {
        a.Length.Should().Be(b.Length);
        var max = 0f;
        for (var i = 0; i < a.Length; i++) max = Math.Max(max, Math.Abs(a[i] - b[i]));
        return max;
    }

    private static double RelativeError(double actual, double expected) => Math.Abs(actual - expected) / Math.Abs(expected);
}

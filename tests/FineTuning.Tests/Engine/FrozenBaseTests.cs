using AspireTune.Engine.Models;
using AspireTune.Engine.Tokenization;
using AspireTune.Engine.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace AspireTune.FineTuning.Tests.Engine;

/// <summary>
/// A frozen base under bf16 matmuls is stored in bf16 only, as on CUDA; here on the CPU with bf16 matmuls turned on,
/// which runs the same code.
/// </summary>
[Collection(GlobalGeneratorCollection.Name)]
public sealed class FrozenBaseTests
{
    private static readonly string[] AllLinears = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    [Fact]
    public void AddLora_Bf16Matmuls_StoresTheFrozenMatricesInBf16OnlyAndKeepsFp32Adapters()
    {
        var reference = EngineFixtures.Reference("llama-tiny/reference.json");
        using var ids = EngineFixtures.Ids(reference["input_ids"]);
        using var fp32 = CausalLm.Load(EngineFixtures.Path_("llama-tiny"));
        using var model = CausalLm.Load(EngineFixtures.Path_("llama-tiny"));
        model.BFloat16Matmuls = true;
        float[] before;
        using (no_grad()) before = model.Forward(ids).data<float>().ToArray();
        var fp32Matrices = model.NamedParameters().Where(p => p.Parameter.dim() >= 2).Sum(p => p.Parameter.numel());

        model.AddLora(new LoraOptions { Rank = 4, Alpha = 8, Dropout = 0, TargetModules = AllLinears });

        var parameters = model.NamedParameters();
        var adapters = parameters.Where(p => CausalLm.IsLoraName(p.Name)).ToList();
        var frozen = parameters.Where(p => !CausalLm.IsLoraName(p.Name)).ToList();
        adapters.Should().HaveCount(2 * 7 * model.Config.NumLayers).And.OnlyContain(p => p.Parameter.dtype == ScalarType.Float32 && p.Parameter.requires_grad);
        frozen.Should().OnlyContain(p => !p.Parameter.requires_grad);
        frozen.Where(p => p.Parameter.dim() >= 2).Should().OnlyContain(p => p.Parameter.dtype == ScalarType.BFloat16);
        frozen.Where(p => p.Parameter.dim() < 2).Should().OnlyContain(p => p.Parameter.dtype == ScalarType.Float32, "norms stay fp32, as in transformers");
        // Two bytes per base matrix element and nothing else: no fp32 master left beside the bf16 weights.
        frozen.Where(p => p.Parameter.dim() >= 2).Sum(p => p.Parameter.numel() * p.Parameter.ElementSize).Should().Be(2 * fp32Matrices);
        var masters = fp32.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter);
        foreach (var (name, p) in frozen.Where(p => p.Parameter.dim() >= 2))
            Same(p, masters[name].to(ScalarType.BFloat16)).Should().BeTrue($"{name} holds its fp32 values rounded to bf16");

        float[] after;
        using (no_grad()) after = model.Forward(ids).data<float>().ToArray();
        // The projections cast their fp32 masters to bf16 at each matmul before, so they compute the same products;
        // only the embedding rows (fp32 before, bf16-rounded now) differ.
        MaxAbsDiff(after, before).Should().BeLessThan(2e-3f);
        MaxAbsDiff(after, EngineFixtures.Floats(reference["logits"])).Should().BeLessThan(1e-2f, "within bf16 tolerance of transformers' fp32 logits (at most 0.42)");

        model.SetTraining(true);
        using (var scope = NewDisposeScope())
        {
            var targets = ids.roll(-1, 1);
            model.LossSum(ids, targets).backward();
        }
        var gradientSums = adapters.ToDictionary(p => p.Name, p => p.Parameter.grad?.abs().sum().item<float>() ?? 0);
        gradientSums.Where(g => g.Key.Contains("lora_B", StringComparison.Ordinal)).Should().OnlyContain(g => g.Value > 0);
        gradientSums.Where(g => g.Key.Contains("lora_A", StringComparison.Ordinal)).Should().OnlyContain(g => g.Value == 0,
            "lora_B starts at zero, so A receives no gradient in the first step");
        frozen.Select(p => p.Parameter.grad is null).Should().OnlyContain(none => none);
        model.Network.Projections().Should().OnlyContain(p => !p.Layer.HoldsCastCopy, "a bf16 weight needs no cached cast");
    }

    [Fact]
    public void Load_FrozenBaseOfABf16Checkpoint_HoldsItsValuesInBf16AndComputesTheSameLogits()
    {
        var reference = EngineFixtures.Reference("llama-tiny-bf16-sharded/reference.json");
        using var ids = EngineFixtures.Ids(reference["input_ids"]);
        var directory = EngineFixtures.Path_("llama-tiny-bf16-sharded");
        using var masters = CausalLm.Load(directory);
        masters.BFloat16Matmuls = true;
        using var frozen = CausalLm.Load(directory, CPU, new ModelOptions { FrozenBase = true, BFloat16Matmuls = true });

        var parameters = frozen.NamedParameters();
        parameters.Should().OnlyContain(p => !p.Parameter.requires_grad);
        parameters.Where(p => p.Parameter.dim() >= 2).Should().OnlyContain(p => p.Parameter.dtype == ScalarType.BFloat16);
        var byName = masters.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter);
        foreach (var (name, p) in parameters)
            Same(p.to(ScalarType.Float32), byName[name]).Should().BeTrue($"{name}: the checkpoint's bf16 values, exactly");

        using var _ = no_grad();
        var expected = masters.Forward(ids).data<float>().ToArray();
        var actual = frozen.Forward(ids).data<float>().ToArray();
        // The fp32 masters of a bf16 checkpoint hold bf16 values, cast at each matmul: the same products bit for bit.
        actual.Should().Equal(expected);
        MaxAbsDiff(actual, EngineFixtures.Floats(reference["logits"])).Should().BeLessThan(1e-2f);
        frozen.Network.Projections().Should().OnlyContain(p => !p.Layer.HoldsCastCopy);

        frozen.AddLora(new LoraOptions { Rank = 2, Dropout = 0, TargetModules = ["q_proj", "v_proj"] });
        frozen.NamedParameters().Where(p => p.Parameter.requires_grad).Should().OnlyContain(p => CausalLm.IsLoraName(p.Name) && p.Parameter.dtype == ScalarType.Float32);
        frozen.Forward(ids).data<float>().ToArray().Should().Equal(expected, "lora_B starts at zero");
    }

    [Fact]
    public void ExportAndMerge_LoraOnABf16Base_AddTheUpdateToTheStoredBf16Weights()
    {
        var reference = EngineFixtures.Reference("llama-tiny/reference.json");
        using var ids = EngineFixtures.Ids(reference["input_ids"]);
        using var model = CausalLm.Load(EngineFixtures.Path_("llama-tiny"));
        model.BFloat16Matmuls = true;
        float[] baseLogits;
        using (no_grad()) baseLogits = model.Forward(ids).data<float>().ToArray();
        model.AddLora(new LoraOptions { Rank = 4, Alpha = 8, Dropout = 0, TargetModules = ["q_proj", "v_proj", "down_proj"] });
        // A fixed non-zero B (no draw from the global generator), so every adapter changes its projection.
        using (no_grad())
            foreach (var (_, layer) in model.Network.Projections().Where(p => p.Layer.lora_B is not null))
                layer.lora_B!.copy_(arange(layer.lora_B.numel()).reshape(layer.lora_B.shape).mul(0.37).sin().mul(0.05));
        var q = model.Network.Projections().First(p => p.ShortName == "q_proj").Layer;
        using var expectedQ = q.weight.to(ScalarType.Float32) + matmul(q.lora_B!, q.lora_A!).mul(q.LoraScale);
        float[] adapted;
        using (no_grad()) adapted = model.Forward(ids).data<float>().ToArray();
        var effect = MaxAbsDiff(adapted, baseLogits);
        effect.Should().BeGreaterThan(0.05f, "the adapters change the logits well beyond bf16 rounding");

        var exported = model.ExportTensors().ToDictionary(t => t.Name);
        exported.Keys.Should().NotContain(n => CausalLm.IsLoraName(n));
        MaxAbsDiff(exported["model.layers.0.self_attn.q_proj.weight"].Data, expectedQ.data<float>().ToArray()).Should().BeLessThan(1e-6f,
            "the update is added in fp32 to the bf16 base it trained against");
        var embed = model.NamedParameters().First(p => p.Name == "model.embed_tokens.weight").Parameter;
        exported["model.embed_tokens.weight"].Data.Should().Equal(embed.to(ScalarType.Float32).data<float>().ToArray());

        var saved = EngineFixtures.TempDirectory();
        model.Save(saved);
        using var reloaded = CausalLm.Load(saved);
        reloaded.BFloat16Matmuls = true;
        using (no_grad())
            MaxAbsDiff(reloaded.Forward(ids).data<float>().ToArray(), adapted).Should().BeLessThan(effect / 10, "the saved model computes what the adapted one did, to bf16 rounding");

        model.MergeLora();
        q.weight.dtype.Should().Be(ScalarType.BFloat16, "merged in bf16, as PEFT merges into a bf16 base");
        MaxAbsDiff(q.weight.to(ScalarType.Float32).data<float>().ToArray(), expectedQ.data<float>().ToArray())
            .Should().BeLessThan(expectedQ.abs().max().item<float>() / 128, "one bf16 rounding of the fp32 sum");
        using (no_grad())
            MaxAbsDiff(model.Forward(ids).data<float>().ToArray(), adapted).Should().BeLessThan(effect / 10);
    }

    [Fact]
    public void Train_FrozenBaseWithoutAdaptersOrWithABf16MatrixMadeTrainable_IsRefusedNamingWhy()
    {
        var examples = Enumerable.Range(0, 8).Select(i => new SftExample($"q{i} =>", $" a{i}")).ToList();
        var options = new SftOptions { MaxSteps = 1, BatchSize = 4, EvalEverySteps = 1, CheckpointEverySteps = 0, ExactMatchExamples = 0 };
        using var frozen = CausalLm.Create(ModelConfig.Gpt2(257, 32, 1, 2, 64) with { BosTokenId = 256, EosTokenId = 256 },
            ByteLevelBpeTokenizer.CreateByteLevel(), 1, CPU, new ModelOptions { FrozenBase = true });
        frozen.NamedParameters().Should().OnlyContain(p => !p.Parameter.requires_grad);

        var noAdapters = () => new SftTrainer(frozen, options).Train(examples, examples, EngineFixtures.TempDirectory(), cancellationToken: TestContext.Current.CancellationToken);

        noAdapters.Should().Throw<InvalidOperationException>().WithMessage("nothing to train*FrozenBase*LoRA*");

        using var bf16 = CausalLm.Load(EngineFixtures.Path_("llama-tiny"), CPU, new ModelOptions { FrozenBase = true, BFloat16Matmuls = true });
        bf16.NamedParameters().Single(p => p.Name == "model.layers.0.mlp.up_proj.weight").Parameter.requires_grad = true;
        var bf16Matrix = () => new SftTrainer(bf16, options)
            .Train(examples, examples, EngineFixtures.TempDirectory(), cancellationToken: TestContext.Current.CancellationToken);

        bf16Matrix.Should().Throw<InvalidOperationException>().WithMessage("parameter 'model.layers.0.mlp.up_proj.weight' is BFloat16*fp32 masters*");
    }

    private static bool Same(Tensor a, Tensor b) => a.dtype == b.dtype && a.eq(b).all().item<bool>();

    private static float MaxAbsDiff(float[] a, float[] b)
    {
        a.Length.Should().Be(b.Length);
        var max = 0f;
        for (var i = 0; i < a.Length; i++) max = Math.Max(max, Math.Abs(a[i] - b[i]));
        return max;
    }
}

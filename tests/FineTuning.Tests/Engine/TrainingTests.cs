using AspireTune.Engine.Models;
using AspireTune.Engine.Training;
using static TorchSharp.torch;

namespace AspireTune.FineTuning.Tests.Engine;

[Collection(GlobalGeneratorCollection.Name)]
public sealed class TrainingTests
{
    private static readonly string[] Good = ["great", "good", "lovely", "superb", "fine", "nice"];
    private static readonly string[] Bad = ["awful", "bad", "poor", "rotten", "dull", "ugly"];
    private static readonly string[] Filler = ["the", "film", "was", "plot", "food", "room", "staff", "day", "it", "very"];

    /// <summary>Short reviews whose label follows from one sentiment word: learnable by a tiny model in a few dozen steps.</summary>
    private static List<SftExample> Reviews(int count, int seed)
    {
        var rng = new Random(seed);
        var list = new List<SftExample>();
        for (var i = 0; i < count; i++)
        {
            var positive = rng.Next(2) == 0;
            var words = Enumerable.Range(0, 3).Select(_ => Filler[rng.Next(Filler.Length)]).ToList();
            words.Insert(rng.Next(4), positive ? Good[rng.Next(Good.Length)] : Bad[rng.Next(Bad.Length)]);
            list.Add(new SftExample($"{string.Join(' ', words)} =>", positive ? " pos" : " neg"));
        }
        return list;
    }

    [Fact]
    public void Train_SmallSentimentTask_ImprovesValidationMetrics()
    {
        using var model = EngineFixtures.TinyGpt2();
        var options = new SftOptions
        {
            Epochs = 4, BatchSize = 16, LearningRate = 3e-3, WarmupSteps = 3, EvalEverySteps = 8, EarlyStoppingPatience = 0,
            CheckpointEverySteps = 0, ExactMatchExamples = 16, Dropout = 0.0, Seed = 5,
        };
        var trainer = new SftTrainer(model, options);
        var validation = Reviews(16, seed: 2);
        var before = trainer.Evaluate(validation);

        var result = trainer.Train(Reviews(96, seed: 1), validation, EngineFixtures.TempDirectory(),
            cancellationToken: TestContext.Current.CancellationToken);

        result.Best!.ValidationLoss.Should().BeLessThan(before.ValidationLoss * 0.5);
        result.Best.MeanTokenAccuracy.Should().BeGreaterThan(before.MeanTokenAccuracy + 0.3);
        result.Evaluations.Select(e => e.ExactMatch!.Value).Max().Should().BeGreaterThan(before.ExactMatch!.Value);
        result.TrainLosses[^1].Should().BeLessThan(result.TrainLosses[0]);
    }

    [Fact]
    public void Train_PackedExamples_ImprovesValidationMetricsInFewerRows()
    {
        using var model = EngineFixtures.TinyGpt2();
        var options = new SftOptions
        {
            Epochs = 5, BatchSize = 4, LearningRate = 3e-3, WarmupSteps = 3, EvalEverySteps = 8, EarlyStoppingPatience = 0,
            CheckpointEverySteps = 0, ExactMatchExamples = 0, Dropout = 0.0, Seed = 5, Packing = true, MaxSequenceLength = 128,
        };
        var trainer = new SftTrainer(model, options);
        var validation = Reviews(16, seed: 2);
        var before = trainer.Evaluate(validation);

        var result = trainer.Train(Reviews(96, seed: 1), validation, EngineFixtures.TempDirectory(),
            cancellationToken: TestContext.Current.CancellationToken);

        // 96 reviews of about 30 byte tokens fill about 22 rows of 128: 6 steps an epoch at 4 rows a step, not 24.
        result.Steps.Should().BeLessThanOrEqualTo(5 * 8);
        result.Best!.ValidationLoss.Should().BeLessThan(before.ValidationLoss * 0.5);
        result.Best.MeanTokenAccuracy.Should().BeGreaterThan(before.MeanTokenAccuracy + 0.3);
    }

    [Fact]
    public void Train_ValidationStopsImproving_StopsEarlyAndRestoresBestStep()
    {
        using var model = EngineFixtures.TinyGpt2(seed: 3);
        var rng = new Random(9);
        // Labels drawn at random: the model can only memorise them, so validation turns worse while training improves.
        List<SftExample> Noise(int n) => [.. Reviews(n, rng.Next()).Select(e => e with { Completion = rng.Next(2) == 0 ? " pos" : " neg" })];
        var options = new SftOptions
        {
            Epochs = 200, BatchSize = 8, LearningRate = 1e-2, Schedule = LearningRateSchedule.Constant, EvalEverySteps = 3,
            EarlyStoppingPatience = 2, CheckpointEverySteps = 0, ExactMatchExamples = 0, WeightDecay = 0, Dropout = 0.0, Seed = 1,
        };
        var trainer = new SftTrainer(model, options);
        var validation = Noise(16);

        var result = trainer.Train(Noise(16), validation, EngineFixtures.TempDirectory(), cancellationToken: TestContext.Current.CancellationToken);

        result.StoppedEarly.Should().BeTrue();
        result.Steps.Should().BeLessThan(200 * 2);
        result.BestStep.Should().BeLessThan(result.Steps);
        result.Evaluations.Should().Contain(e => e.Step > result.BestStep && e.ValidationLoss > result.Best!.ValidationLoss);
        // The model now holds the best step's weights, not the last step's.
        trainer.Evaluate(validation).ValidationLoss.Should().BeApproximately(result.Best!.ValidationLoss, 1e-5);
    }

    [Fact]
    public void Train_KilledThenResumed_ReproducesTheUninterruptedLossCurve()
    {
        var train = Reviews(40, seed: 11);
        var validation = Reviews(8, seed: 12);
        var options = new SftOptions
        {
            Epochs = 3, BatchSize = 8, GradientAccumulationSteps = 2, LearningRate = 2e-3, WarmupSteps = 2, EvalEverySteps = 3,
            CheckpointEverySteps = 4, EarlyStoppingPatience = 0, ExactMatchExamples = 2, Dropout = 0.1, Seed = 21,
        };

        TrainingResult whole;
        using (var model = EngineFixtures.TinyGpt2(seed: 4, dropout: 0.1))
            whole = new SftTrainer(model, options).Train(train, validation, EngineFixtures.TempDirectory(),
                cancellationToken: TestContext.Current.CancellationToken);
        var uninterrupted = whole.TrainLosses;

        var dir = EngineFixtures.TempDirectory();
        using var cts = new CancellationTokenSource();
        using (var model = EngineFixtures.TinyGpt2(seed: 4, dropout: 0.1))
        {
            var killer = new CancelAtStep(7, cts);
            var act = () => new SftTrainer(model, options, killer).Train(train, validation, dir, cancellationToken: cts.Token);
            act.Should().Throw<OperationCanceledException>();
        }
        TrainingResult resumed;
        using (var model = EngineFixtures.TinyGpt2(seed: 4, dropout: 0.1))
            resumed = new SftTrainer(model, options).Train(train, validation, dir, resumeFrom: dir,
                cancellationToken: TestContext.Current.CancellationToken);

        uninterrupted.Should().HaveCount(9);
        resumed.TrainLosses.Should().Equal(uninterrupted, "resuming from step 4 on CPU must repeat steps 5-9 bit for bit");
        resumed.Evaluations.Should().Equal(whole.Evaluations);
        resumed.BestStep.Should().Be(whole.BestStep);
        Directory.GetDirectories(dir, "best-*").Select(Path.GetFileName).Should().Contain($"best-{whole.BestStep:D6}").And.HaveCountLessThanOrEqualTo(options.KeepCheckpoints + 1);
    }

    [Fact]
    public void Train_WithLora_FreezesBaseAndSavesMergedWeightsThatReload()
    {
        using var model = EngineFixtures.TinyGpt2(seed: 6);
        var baseWpe = model.NamedParameters().Single(p => p.Name == "transformer.wpe.weight").Parameter.clone();
        var options = new SftOptions
        {
            Epochs = 2, BatchSize = 16, LearningRate = 5e-3, EvalEverySteps = 4, CheckpointEverySteps = 0, ExactMatchExamples = 0,
            Lora = new LoraOptions { Rank = 4, Alpha = 8, Dropout = 0.0, TargetModules = ["c_attn", "c_fc"] },
        };

        new SftTrainer(model, options).Train(Reviews(64, 1), Reviews(16, 2), EngineFixtures.TempDirectory(),
            cancellationToken: TestContext.Current.CancellationToken);
        var dir = EngineFixtures.TempDirectory();
        model.Save(dir);
        using var reloaded = CausalLm.Load(dir);

        using var _ = no_grad();
        using var ids = tensor(model.Tokenizer!.Encode("good film =>").Select(i => (long)i).ToArray()).unsqueeze(0);
        reloaded.Forward(ids).allclose(model.Forward(ids), rtol: 0, atol: 1e-5).Should().BeTrue();
        model.NamedParameters().Single(p => p.Name == "transformer.wpe.weight").Parameter.allclose(baseWpe, rtol: 0, atol: 0).Should().BeTrue();
        reloaded.NamedParameters().Should().NotContain(p => p.Name.Contains("lora"));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void CheckpointWeights_AppliedToAFreshBase_GiveThatStepsModel(bool lora)
    {
        var baseDir = EngineFixtures.TempDirectory();
        using (var initial = EngineFixtures.TinyGpt2(seed: 8)) initial.Save(baseDir);
        var adapters = lora ? new LoraOptions { Rank = 4, Alpha = 8, Dropout = 0.0, TargetModules = ["c_attn", "c_fc"] } : null;
        // 64 examples in batches of 16 for 2 epochs: 8 steps, checkpoints at 4 and 8, one evaluation (at 8, so 8 is the best step).
        var options = new SftOptions
        {
            Epochs = 2, BatchSize = 16, LearningRate = 5e-3, EvalEverySteps = 8, CheckpointEverySteps = 4, KeepCheckpoints = 5,
            EarlyStoppingPatience = 0, ExactMatchExamples = 0, Dropout = 0.0, Lora = adapters,
        };
        var checkpoints = EngineFixtures.TempDirectory();
        using var trained = CausalLm.Load(baseDir);
        new SftTrainer(trained, options).Train(Reviews(64, 1), Reviews(16, 2), checkpoints, cancellationToken: TestContext.Current.CancellationToken);

        using var last = CausalLm.Load(baseDir);
        using var earlier = CausalLm.Load(baseDir);
        var lastStep = CheckpointWeights.Apply(last, Path.Combine(checkpoints, "checkpoint-000008"), adapters);
        var earlierStep = CheckpointWeights.Apply(earlier, Path.Combine(checkpoints, "checkpoint-000004"), adapters);
        var exported = EngineFixtures.TempDirectory();
        last.Save(exported);
        using var served = CausalLm.Load(exported);

        using var _ = no_grad();
        using var ids = tensor(trained.Tokenizer!.Encode("good film =>").Select(i => (long)i).ToArray()).unsqueeze(0);
        using var expected = trained.Forward(ids);
        (lastStep, earlierStep).Should().Be((8, 4));
        last.Forward(ids).allclose(expected, rtol: 0, atol: 1e-6).Should().BeTrue("the last checkpoint holds the weights the run ended with");
        served.Forward(ids).allclose(expected, rtol: 0, atol: 1e-5).Should().BeTrue("saved, the checkpoint's model folds its adapters in and reloads as the same model");
        served.NamedParameters().Should().NotContain(p => p.Name.Contains("lora"));
        (earlier.Forward(ids) - expected).abs().max().item<float>().Should().BeGreaterThan(1e-3f, "step 4's weights are not step 8's");
        using var mismatched = CausalLm.Load(baseDir);
        var wrongSetting = () => CheckpointWeights.Apply(mismatched, Path.Combine(checkpoints, "checkpoint-000008"), lora ? null : new LoraOptions { Rank = 4 });
        wrongSetting.Should().Throw<ModelFormatException>().WithMessage("*group.0*");
    }

    [Fact]
    public void Train_EmptyCompletion_IsRejectedWithItsPosition()
    {
        using var model = EngineFixtures.TinyGpt2();
        var trainer = new SftTrainer(model, new SftOptions());

        var act = () => trainer.Train([new("a", "b"), new("c", "")], [new("a", "b")], EngineFixtures.TempDirectory(),
            cancellationToken: TestContext.Current.CancellationToken);

        act.Should().Throw<ArgumentException>().WithMessage("training example 2: the completion is empty*");
    }

    private sealed class CancelAtStep(int step, CancellationTokenSource cts) : ITrainingObserver
    {
        public void OnProgress(TrainingProgress progress)
        {
            if (progress.Step == step) cts.Cancel();
        }
    }
}

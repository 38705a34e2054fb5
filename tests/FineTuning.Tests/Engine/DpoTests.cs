using AspireTune.Engine.Models;
using AspireTune.Engine.Tokenization;
using AspireTune.Engine.Training;
using static TorchSharp.torch;

namespace AspireTune.FineTuning.Tests.Engine;

/// <summary>
/// Preference training: the DPO loss, its gradients and one AdamW step against PyTorch (fixtures/dpo, made by
/// tools/fixtures/dpo_reference.py on the accelerator machine's CPU), and the trainer's behaviour on pairs. In the
/// training collection: its seeded runs must neither disturb nor be disturbed by the other engine tests' bit-exact resumes.
/// </summary>
[Collection(TrainingCollection.Name)]
public sealed class DpoTests
{
    private static readonly (string Prompt, string Chosen, string Rejected)[] FixturePairs =
    [
        ("Classify the sentiment: the soup was excellent", "positive", "negative"),
        ("Classify the sentiment: the wine was awful", "negative", "positive"),
        ("Classify the sentiment: lovely staff and a superb dessert", "positive", "neutral"),
        ("Answer briefly: what is two plus two?", "four", "I think the answer is five"),
    ];

    private const double Tolerance = 1e-5;

    [Fact]
    public void DpoLoss_PerturbedPolicyAgainstFrozenBase_MatchesPyTorchLossGradientsAndAdamWStep()
    {
        var reference = EngineFixtures.Reference("dpo/dpo-reference.json");
        var beta = reference["beta"]!.GetValue<double>();
        using var frozen = CausalLm.Load(EngineFixtures.Path_("dpo/dpo-base"));
        using var policy = CausalLm.Load(EngineFixtures.Path_("dpo/dpo-policy"));
        var examples = FixturePairs.Select(p => new DpoExample($"<|user|>\n{p.Prompt}\n<|assistant|>\n", p.Chosen, p.Rejected)).ToList();
        var pairs = DpoTrainer.Encode(examples, ByteLevelBpeTokenizer.CreateByteLevel(), 128, "training");
        var sequences = reference["sequences"]!.AsArray();
        for (var i = 0; i < pairs.Count; i++)
        {
            var prompt = Ints(sequences[i]!["prompt"]);
            pairs[i].Chosen.Ids.Should().Equal(prompt.Concat(Ints(sequences[i]!["chosen"])), "pair {0}: the same tokens as PyTorch's", i);
            pairs[i].Rejected.Ids.Should().Equal(prompt.Concat(Ints(sequences[i]!["rejected"])));
        }

        var before = reference["before"]!;
        var expectedPairs = before["pairs"]!.AsArray();
        Tensor refChosen, refRejected;
        using (no_grad())
            (refChosen, refRejected, _) = DpoTrainer.LogProbs(frozen, pairs, 256);
        using var scope = NewDisposeScope();
        var adam = (Beta1: reference["adam_betas"]![0]!.GetValue<double>(), Beta2: reference["adam_betas"]![1]!.GetValue<double>(), Eps: reference["adam_eps"]!.GetValue<double>());
        using var flat = new FlatParameters(policy.NamedParameters(), reference["weight_decay"]!.GetValue<double>(), policy.Device);
        using var optimizer = new FlatAdamW(flat, adam.Beta1, adam.Beta2, adam.Eps);
        var (policyChosen, policyRejected, _) = DpoTrainer.LogProbs(policy, pairs, 256);
        var (losses, margins) = DpoLoss.Compute(policyChosen, policyRejected, refChosen, refRejected, beta);
        var loss = losses.mean();
        loss.backward();

        for (var i = 0; i < pairs.Count; i++)
        {
            var e = expectedPairs[i]!;
            RelativeError(policyChosen[i].item<float>(), e["policy_chosen"]!.GetValue<double>()).Should().BeLessThan(Tolerance);
            RelativeError(policyRejected[i].item<float>(), e["policy_rejected"]!.GetValue<double>()).Should().BeLessThan(Tolerance);
            RelativeError(refChosen[i].item<float>(), e["reference_chosen"]!.GetValue<double>()).Should().BeLessThan(Tolerance);
            RelativeError(refRejected[i].item<float>(), e["reference_rejected"]!.GetValue<double>()).Should().BeLessThan(Tolerance);
            RelativeError(losses[i].item<float>(), e["loss"]!.GetValue<double>()).Should().BeLessThan(Tolerance, "pair {0}'s DPO loss", i);
        }
        margins.data<float>().ToArray().Select(m => (double)m).Should().Equal(EngineFixtures.Floats(before["margins"]).Select(m => (double)m),
            (a, b) => Math.Abs(a - b) < Tolerance);
        RelativeError(loss.item<float>(), before["loss"]!.GetValue<double>()).Should().BeLessThan(Tolerance);
        RelativeError(flat.GradNorm().item<float>(), before["grad_norm"]!.GetValue<double>()).Should().BeLessThan(Tolerance);
        var byName = policy.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter);
        foreach (var (name, norm) in before["param_grad_norms"]!.AsObject())
        {
            byName.Should().ContainKey(name);
            RelativeError(byName[name].grad!.norm().item<float>(), norm!.GetValue<double>()).Should().BeLessThan(Tolerance, "the gradient of {0}", name);
        }
        foreach (var (name, values) in before["ln_f_grads"]!.AsObject())
        {
            var expected = EngineFixtures.Floats(values);
            var scale = expected.Max(Math.Abs);
            byName[name].grad!.data<float>().ToArray().Zip(expected).Max(p => Math.Abs(p.First - p.Second)).Should().BeLessThan((float)(Tolerance * scale));
        }

        optimizer.Step(reference["learning_rate"]!.GetValue<double>());
        using (no_grad())
        {
            var after = reference["after_one_step"]!;
            var (c, r, _) = DpoTrainer.LogProbs(policy, pairs, 256);
            var (afterLosses, afterMargins) = DpoLoss.Compute(c, r, refChosen, refRejected, beta);
            RelativeError(afterLosses.mean().item<float>(), after["loss"]!.GetValue<double>()).Should().BeLessThan(Tolerance);
            for (var i = 0; i < pairs.Count; i++)
                RelativeError(c[i].item<float>(), after["pairs"]![i]!["policy_chosen"]!.GetValue<double>()).Should().BeLessThan(Tolerance);
            afterMargins.mean().item<float>().Should().BeGreaterThan(margins.mean().item<float>(), "one step raises the preferred answers' margin");
        }
    }

    /// <summary>Pairs whose preferred answer follows from the sentiment word; the other answer is the wrong label.</summary>
    private static List<DpoExample> Pairs(int count, int seed)
    {
        string[] good = ["great", "good", "lovely", "superb"], bad = ["awful", "bad", "poor", "rotten"];
        var rng = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ =>
        {
            var positive = rng.Next(2) == 0;
            var word = positive ? good[rng.Next(good.Length)] : bad[rng.Next(bad.Length)];
            return new DpoExample($"the food was {word} =>", positive ? " pos" : " neg", positive ? " neg" : " pos");
        })];
    }

    [Fact]
    public void Train_PreferencePairs_LowersTheLossAndRanksThePreferredAnswerFirst()
    {
        using var model = EngineFixtures.TinyGpt2(seed: 3);
        var options = new DpoOptions
        {
            Beta = 0.5,
            Training = new SftOptions { Epochs = 6, BatchSize = 8, LearningRate = 1e-3, WarmupSteps = 4, EvalEverySteps = 4, EarlyStoppingPatience = 0, CheckpointEverySteps = 0, Dropout = 0, Seed = 2 },
        };
        var validation = Pairs(16, seed: 2);

        var result = new DpoTrainer(model, options).Train(Pairs(48, seed: 1), validation, EngineFixtures.TempDirectory(),
            cancellationToken: TestContext.Current.CancellationToken);

        result.TrainLosses[0].Should().BeApproximately(Math.Log(2), 1e-4, "policy and reference are the same model at the first step");
        result.Best!.ValidationLoss.Should().BeLessThan(0.8 * Math.Log(2));
        result.Best.RewardAccuracy.Should().BeGreaterThan(0.7, "half the pairs are ranked right by chance");
        result.Best.RewardMargin.Should().BePositive();
        result.Evaluations.Should().OnlyContain(e => e.ExactMatch == null);
    }

    [Fact]
    public void Train_WithLora_ScoresTheReferenceWithAdaptersOffAndLeavesTheBaseWeights()
    {
        using var model = EngineFixtures.TinyGpt2(seed: 5);
        var pairs = DpoTrainer.Encode(Pairs(4, seed: 3), model.Tokenizer!, 128, "validation");
        Tensor baseChosen;
        using (no_grad())
            baseChosen = DpoTrainer.LogProbs(model, pairs, 256).Chosen.clone();
        var options = new DpoOptions
        {
            Training = new SftOptions
            {
                Epochs = 3, BatchSize = 8, LearningRate = 2e-2, EvalEverySteps = 3, EarlyStoppingPatience = 0, CheckpointEverySteps = 0, Dropout = 0,
                Lora = new LoraOptions { Rank = 4, Alpha = 8, Dropout = 0 },
            },
        };

        var result = new DpoTrainer(model, options).Train(Pairs(32, seed: 1), Pairs(8, seed: 2), EngineFixtures.TempDirectory(),
            cancellationToken: TestContext.Current.CancellationToken);

        using var _ = no_grad();
        var trained = DpoTrainer.LogProbs(model, pairs, 256).Chosen;
        Tensor adaptersOff;
        using (model.WithoutAdapters())
            adaptersOff = DpoTrainer.LogProbs(model, pairs, 256).Chosen;
        model.HasLora.Should().BeTrue();
        result.Steps.Should().Be(12);
        adaptersOff.allclose(baseChosen, rtol: 0, atol: 1e-5).Should().BeTrue("with the adapters off the model is its frozen base");
        trained.allclose(baseChosen, rtol: 0, atol: 1e-3).Should().BeFalse("the adapters learned something");
    }

    [Fact]
    public void Train_KilledThenResumed_ReproducesTheUninterruptedLossCurve()
    {
        var train = Pairs(24, seed: 11);
        var validation = Pairs(8, seed: 12);
        var options = new DpoOptions
        {
            Training = new SftOptions { Epochs = 3, BatchSize = 4, GradientAccumulationSteps = 2, LearningRate = 2e-3, EvalEverySteps = 3, CheckpointEverySteps = 4, EarlyStoppingPatience = 0, Dropout = 0.1, Seed = 9 },
        };
        TrainingResult whole;
        using (var model = EngineFixtures.TinyGpt2(seed: 4, dropout: 0.1))
            whole = new DpoTrainer(model, options).Train(train, validation, EngineFixtures.TempDirectory(), cancellationToken: TestContext.Current.CancellationToken);

        var dir = EngineFixtures.TempDirectory();
        using var cts = new CancellationTokenSource();
        using (var model = EngineFixtures.TinyGpt2(seed: 4, dropout: 0.1))
        {
            var act = () => new DpoTrainer(model, options, new CancelAtStep(6, cts)).Train(train, validation, dir, cancellationToken: cts.Token);
            act.Should().Throw<OperationCanceledException>();
        }
        TrainingResult resumed;
        using (var model = EngineFixtures.TinyGpt2(seed: 4, dropout: 0.1))
            resumed = new DpoTrainer(model, options).Train(train, validation, dir, resumeFrom: dir, cancellationToken: TestContext.Current.CancellationToken);

        whole.TrainLosses.Should().HaveCount(9);
        resumed.TrainLosses.Should().Equal(whole.TrainLosses, "the reference is scored from the base again and steps 5-9 repeat bit for bit");
        resumed.Evaluations.Should().Equal(whole.Evaluations);
    }

    [Fact]
    public void Train_IdenticalAnswers_IsRejectedWithThePairsPosition()
    {
        using var model = EngineFixtures.TinyGpt2();
        var trainer = new DpoTrainer(model, new DpoOptions());

        var act = () => trainer.Train([new("a", "b", "c"), new("a", "same", "same")], [new("a", "b", "c")], EngineFixtures.TempDirectory(),
            cancellationToken: TestContext.Current.CancellationToken);

        act.Should().Throw<ArgumentException>().WithMessage("training pair 2: the preferred and the non-preferred answer are the same*");
    }

    private static int[] Ints(System.Text.Json.Nodes.JsonNode? node) => [.. node!.AsArray().Select(x => x!.GetValue<int>())];

    private static double RelativeError(double actual, double expected) => Math.Abs(actual - expected) / Math.Max(Math.Abs(expected), 1e-12);

    private sealed class CancelAtStep(int step, CancellationTokenSource cts) : ITrainingObserver
    {
        public void OnProgress(TrainingProgress progress)
        {
            if (progress.Step == step) cts.Cancel();
        }
    }
}

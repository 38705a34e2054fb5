using AspireTune.Engine.Training;
using AspireTune.FineTuning.Jobs;

namespace AspireTune.FineTuning.Tests;

public sealed class HyperparameterTests
{
    [Fact]
    public void ToSftOptions_ResolvedRequest_EngineGetsTheSameValues()
    {
        var requested = new Dictionary<string, string>
        {
            ["n_epochs"] = "2", ["batch_size"] = "4", ["learning_rate"] = "0.002", ["warmup_ratio"] = "0.25", ["lr_scheduler"] = "linear",
            ["eval_interval"] = "3", ["lora_rank"] = "8", ["max_seq_len"] = "128", ["seed"] = "7",
        };
        HyperparameterSpec.Validate(requested).Should().BeEmpty();

        var resolved = HyperparameterSpec.Resolve(requested, examples: 40, modelParameters: 1_000_000, modelMaxPositions: 256);
        var options = resolved.ToSftOptions(40);

        resolved.TotalSteps(40).Should().Be(20);
        options.Epochs.Should().Be(2);
        options.BatchSize.Should().Be(4);
        options.LearningRate.Should().Be(0.002);
        options.WarmupSteps.Should().Be(5, "a quarter of 20 planned steps");
        options.Schedule.Should().Be(LearningRateSchedule.Linear);
        options.EvalEverySteps.Should().Be(3);
        options.CheckpointEverySteps.Should().Be(3, "checkpoints default to the evaluation interval");
        options.Lora!.Rank.Should().Be(8);
        options.Lora.Alpha.Should().Be(16);
        options.MaxSequenceLength.Should().Be(128);
        options.Seed.Should().Be(7);
    }

    [Fact]
    public void ToSftOptions_NoLoraRank_FullFineTuning()
    {
        var options = HyperparameterSpec.Resolve(new Dictionary<string, string>(), 10, 1_000_000, 64).ToSftOptions(10);

        options.Lora.Should().BeNull();
        options.Schedule.Should().Be(LearningRateSchedule.Cosine);
        options.MaxSequenceLength.Should().Be(64);
    }

    [Fact]
    public void ToDpoOptions_AutoBeta_ResolvesToTheDefaultAndDropoutOff()
    {
        var auto = HyperparameterSpec.Resolve(new Dictionary<string, string> { ["beta"] = "auto" }, 20, 1_000_000, 64, "dpo");
        var given = HyperparameterSpec.Resolve(new Dictionary<string, string> { ["beta"] = "0.25", ["n_epochs"] = "2" }, 20, 1_000_000, 64, "dpo");
        var supervised = HyperparameterSpec.Resolve(new Dictionary<string, string>(), 20, 1_000_000, 64);

        auto.Beta.Should().Be(HyperparameterSpec.AutoBeta);
        auto.ToDpoOptions(20).Beta.Should().Be(0.1);
        auto.ToDpoOptions(20).Training.Dropout.Should().Be(0, "the policy and its frozen base are compared on the same tokens");
        given.ToDpoOptions(20).Beta.Should().Be(0.25);
        given.ToDpoOptions(20).Training.Epochs.Should().Be(2);
        supervised.Beta.Should().BeNull();
        System.Text.Json.JsonSerializer.Serialize(supervised).Should().NotContain("beta");
    }

    [Fact]
    public void Validate_BetaOnASupervisedJobOrOutOfRange_IsRejectedByName()
    {
        HyperparameterSpec.Validate(new Dictionary<string, string> { ["beta"] = "0.1" }).Should().ContainKey("hyperparameters.beta")
            .WhoseValue.Single().Should().Contain("only to dpo");
        HyperparameterSpec.Validate(new Dictionary<string, string> { ["beta"] = "0" }, "dpo").Should().ContainKey("hyperparameters.beta");
        HyperparameterSpec.Validate(new Dictionary<string, string> { ["beta"] = "0.5" }, "dpo").Should().BeEmpty();
    }
}

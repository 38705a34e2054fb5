using AspireTune.TestSupport;

namespace AspireTune.FineTuning.Tests;

/// <summary>Issue 12's sweep over every operation of the FineTuning service's own host (see <see cref="BadInputSweep"/>).</summary>
public sealed class BadInputSweepTests
{
    [Fact]
    public async Task FineTuningHost_EveryOperationWithBadInput_AnswersWithoutServerErrorHangOrStateChange()
    {
        await using var factory = new FineTuningFactory();

        var sweep = await BadInputSweep.RunAsync(factory.CreateClient(), "the FineTuning host",
            (template, parameter) => template.StartsWith("/api/models", StringComparison.Ordinal) && parameter == "id" ? "aspiretune-tiny" : null, TestContext.Current.CancellationToken);

        TestContext.Current.TestOutputHelper?.WriteLine(sweep.Summary);
        sweep.Failures.Should().BeEmpty(sweep.Summary);
    }
}

using AspireTune.Cli.Infrastructure;
using AspireTune.Cli.Promptfoo;

namespace AspireTune.Cli.Tests;

/// <summary>--fail-on gates over results whose numbers are worked out by hand.</summary>
public sealed class GateTests
{
    private static EvalRow Row(string provider, int test, bool pass, double latencyMs = 100, double cost = 0.001, string? error = null, bool quality = true) =>
        new(test, null, new Dictionary<string, string>(), "p", provider, 0, pass, quality && pass, true, "out", error, [], latencyMs, cost);

    // large passes 9 of 10, small 5 of 10 (fails tests 5-9); latencies 100..1000 ms for large.
    private static readonly List<EvalRow> Rows =
    [
        .. Enumerable.Range(0, 10).Select(i => Row("large", i, i != 3, latencyMs: 100 * (i + 1))),
        .. Enumerable.Range(0, 10).Select(i => Row("small", i, i < 5)),
    ];

    [Theory]
    [InlineData("pass-rate[large]<0.9", true, "pass-rate = 0.9")]
    [InlineData("pass-rate[large]<0.95", false, "pass-rate = 0.9")]
    [InlineData("pass-rate[small]<=0.5", false, "pass-rate = 0.5")]
    [InlineData("latency-p95[large]>950", false, "latency-p95 = 955")]
    [InlineData("cost[small]>0.02", true, "cost = 0.01")]
    [InlineData("cost-per-1k[small]>1", false, "cost-per-1k = 1")]
    [InlineData("error-rate>0", true, "error-rate = 0")]
    public void Threshold_HandWorkedValues_PassOrFail(string gate, bool passes, string detail)
    {
        var outcomes = Gate.Parse(gate).Evaluate(Rows).ToList();

        outcomes.Should().OnlyContain(o => o.Passed == passes);
        outcomes[0].Detail.Should().Contain(detail);
    }

    [Fact]
    public void Threshold_WithoutCandidate_ChecksEveryPromptAndProvider()
    {
        var outcomes = Gate.Parse("pass-rate<0.8").Evaluate(Rows).ToList();

        outcomes.Should().HaveCount(2);
        outcomes.Single(o => o.Detail.StartsWith("p|large", StringComparison.Ordinal)).Passed.Should().BeTrue();
        outcomes.Single(o => o.Detail.StartsWith("p|small", StringComparison.Ordinal)).Passed.Should().BeFalse();
    }

    [Fact]
    public void WorseThan_SmallFarBelowLarge_Fails_LargeAgainstSmall_Holds()
    {
        // Paired differences small - large: -1 on tests 5-9, +1 on test 3, 0 elsewhere: mean -0.4.
        var small = Gate.Parse("small worse-than large by 0.1").Evaluate(Rows).Single();
        small.Passed.Should().BeFalse();
        small.Detail.Should().Contain("= -0.400");

        Gate.Parse("large worse-than small by 0.05").Evaluate(Rows).Single().Passed.Should().BeTrue();
    }

    [Theory]
    [InlineData("speed<3", "unknown metric 'speed'")]
    [InlineData("pass rate below 0.9", "is not a gate")]
    public void Parse_Malformed_UsageError(string gate, string message)
    {
        var act = () => Gate.Parse(gate);

        act.Should().Throw<CliException>().Where(e => e.ExitCode == ExitCodes.Usage && e.Message.Contains(message));
    }

    [Fact]
    public void Evaluate_UnknownCandidate_UsageErrorNamingTheCandidates()
    {
        var act = () => Gate.Parse("pass-rate[medium]<0.5").Evaluate(Rows).ToList();

        act.Should().Throw<CliException>().Where(e => e.ExitCode == ExitCodes.Usage && e.Message.Contains("providers: large, small"));
    }
}

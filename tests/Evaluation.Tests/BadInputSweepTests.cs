using System.Net.Http.Json;
using AspireTune.TestSupport;

namespace AspireTune.Evaluation.Tests;

/// <summary>Issue 12's sweep over every operation of the Evaluation service's own host (see <see cref="BadInputSweep"/>).</summary>
public sealed class BadInputSweepTests
{
    [Fact]
    public async Task EvaluationHost_EveryOperationWithBadInput_AnswersWithoutServerErrorHangOrStateChange()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var host = EvaluationHost.Start();
        (await host.Client.PutAsJsonAsync("/api/evaluation/models/sweep", new { kind = "OpenAICompatible", baseUrl = "http://127.0.0.1:9/v1", model = "m" }, ct)).EnsureSuccessStatusCode();
        (await host.Client.PostAsJsonAsync("/api/evaluation/prompts", new { name = "sweep", template = "{{$input}}", labels = new[] { "prod" } }, ct)).EnsureSuccessStatusCode();

        var sweep = await BadInputSweep.RunAsync(host.Client, "the Evaluation host", (template, parameter) => (template, parameter) switch
        {
            (_, "label") => "prod",
            (_, "version") => "1",
            _ when parameter is "id" or "name" => "sweep",
            _ => null,
        }, ct);

        TestContext.Current.TestOutputHelper?.WriteLine(sweep.Summary);
        sweep.Failures.Should().BeEmpty(sweep.Summary);
    }
}

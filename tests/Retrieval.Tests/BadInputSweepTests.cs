using System.Net.Http.Json;
using AspireTune.TestSupport;

namespace AspireTune.Retrieval.Tests;

/// <summary>Issue 12's sweep over every operation of the Retrieval service's own host (see <see cref="BadInputSweep"/>).</summary>
public sealed class BadInputSweepTests
{
    [Fact]
    public async Task RetrievalHost_EveryOperationWithBadInput_AnswersWithoutServerErrorHangOrStateChange()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var host = new RetrievalHost();
        var client = host.CreateClient();
        (await host.CreateCollectionAsync("sweep")).EnsureSuccessStatusCode();
        (await client.PostAsJsonAsync("/api/retrieval/collections/sweep/examples", new { examples = new[] { new { input = "hello", expected = "ham" } } }, ct)).EnsureSuccessStatusCode();

        var sweep = await BadInputSweep.RunAsync(client, "the Retrieval host", (_, parameter) => parameter == "collection" ? "sweep" : null, ct);

        TestContext.Current.TestOutputHelper?.WriteLine(sweep.Summary);
        sweep.Failures.Should().BeEmpty(sweep.Summary);
    }
}

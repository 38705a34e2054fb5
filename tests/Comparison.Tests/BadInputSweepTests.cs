using AspireTune.TestSupport;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;

namespace AspireTune.Comparison.Tests;

/// <summary>Issue 12's sweep over every operation of the Comparison service's own host (see <see cref="BadInputSweep"/>).</summary>
public sealed class BadInputSweepTests
{
    [Fact]
    public async Task ComparisonHost_EveryOperationWithBadInput_AnswersWithoutServerErrorHangOrStateChange()
    {
        var data = TestInfrastructure.TempDataFolder("comparison-sweep");
        await using var factory = new WebApplicationFactory<Program>().WithWebHostBuilder(b =>
        {
            b.UseSetting("ASPIRETUNE_DATA", data);
            b.UseSetting("ConnectionStrings:messaging", "");
            b.UseSetting("ConnectionStrings:comparisondb", "");
        });

        var sweep = await BadInputSweep.RunAsync(factory.CreateClient(), "the Comparison host", (_, _) => null, TestContext.Current.CancellationToken);

        TestContext.Current.TestOutputHelper?.WriteLine(sweep.Summary);
        sweep.Failures.Should().BeEmpty(sweep.Summary);
    }
}

public sealed class RequestLimitTests
{
    [Fact]
    public async Task CreateExperiment_BodyOverTheLimit_Is413WithTheLimitInTheDetail()
    {
        await using var factory = new WebApplicationFactory<Program>().WithWebHostBuilder(b =>
        {
            b.UseSetting("ASPIRETUNE_DATA", TestInfrastructure.TempDataFolder("comparison-limit"));
            b.UseSetting("ConnectionStrings:messaging", "");
            b.UseSetting("ConnectionStrings:comparisondb", "");
            b.UseSetting("Comparison:MaxDatasetBytes", "1000");
        });
        var body = new StringContent("{\"name\":\"big\",\"dataset\":\"" + new string('x', 2 * 1024 * 1024) + "\"}", System.Text.Encoding.UTF8, "application/json");

        var response = await factory.CreateClient().PostAsync("/api/experiments", body, TestContext.Current.CancellationToken);

        response.StatusCode.Should().Be(System.Net.HttpStatusCode.RequestEntityTooLarge);
        (await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken)).Should().Contain("at most 1050576");
    }
}

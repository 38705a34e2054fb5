using System.Net.Http.Json;
using AspireTune.TestSupport;

namespace AspireTune.Platform.Tests;

/// <summary>Issue 12's sweep over every operation of the embedded host's OpenAPI document (see <see cref="BadInputSweep"/>).</summary>
public sealed class BadInputSweepTests
{
    [Fact]
    public async Task EmbeddedHost_EveryOperationWithBadInput_AnswersWithoutServerErrorHangOrStateChange()
    {
        var ct = TestContext.Current.CancellationToken;
        var (app, http) = await EmbeddedExperimentTests.StartEmbeddedAsync(TestInfrastructure.TempDataFolder("sweep"));
        await using var _ = app;
        // Real resources, so bad bodies reach validation instead of stopping at 404.
        (await http.PutAsJsonAsync("api/evaluation/models/sweep", new { kind = "OpenAICompatible", baseUrl = "http://127.0.0.1:9/v1", model = "m" }, ct)).EnsureSuccessStatusCode();
        (await http.PostAsJsonAsync("api/evaluation/prompts", new { name = "sweep", template = "{{$input}}", labels = new[] { "prod" } }, ct)).EnsureSuccessStatusCode();
        (await http.PostAsJsonAsync("api/retrieval/collections", new { name = "sweep" }, ct)).EnsureSuccessStatusCode();
        (await http.PostAsJsonAsync("api/retrieval/collections/sweep/examples", new { examples = new[] { new { input = "hello", expected = "ham" } } }, ct)).EnsureSuccessStatusCode();

        var sweep = await BadInputSweep.RunAsync(http, "the embedded host", Seed, ct);

        TestContext.Current.TestOutputHelper?.WriteLine(sweep.Summary);
        sweep.Failures.Should().BeEmpty(sweep.Summary);
    }

    internal static string? Seed(string template, string parameter) => (template, parameter) switch
    {
        (_, "collection") => "sweep",
        (_, "label") => "prod",
        (_, "version") => "1",
        _ when template.StartsWith("/api/evaluation/prompts", StringComparison.Ordinal) && parameter == "name" => "sweep",
        _ when template.StartsWith("/api/evaluation/models", StringComparison.Ordinal) && parameter == "id" => "sweep",
        _ when template.StartsWith("/api/models", StringComparison.Ordinal) && parameter == "id" => "aspiretune-tiny",
        _ => null,
    };
}

using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;

namespace AspireTune.Platform.Tests;

/// <summary>Bad input to the experiments API: a precise 4xx, and nothing recorded.</summary>
public sealed class ExperimentsApiTests
{
    [Fact]
    public async Task Create_BadInput_Is400WithWhatAndWhere_AndRecordsNothing()
    {
        var ct = TestContext.Current.CancellationToken;
        var (app, http) = await EmbeddedExperimentTests.StartEmbeddedAsync(TestSupport.TestInfrastructure.TempDataFolder("api-bad"));
        await using var _ = app;

        async Task<JsonObject> Refused(object body)
        {
            var response = await http.PostAsJsonAsync("api/experiments", body, ct);
            response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
            response.Content.Headers.ContentType!.MediaType.Should().Be("application/problem+json");
            return (await response.Content.ReadFromJsonAsync<JsonObject>(ct))!["errors"]!.AsObject();
        }

        var malformed = await Refused(new { name = "x", dataset = "{\"input\":\"a\",\"expected\":\"ham\"}\n{broken\n{\"input\":\"b\"}" });
        var lines = malformed["dataset"]!.AsArray().Select(e => e!.GetValue<string>()).ToList();
        lines.Should().HaveCount(2);
        lines[0].Should().StartWith("line 2: not valid JSON");
        lines[1].Should().Be("line 3: 'expected' must be a string");
        (await Refused(new { name = "x", datasetPath = "../../etc/passwd" }))["datasetPath"]![0]!.GetValue<string>().Should().Contain("outside the data folder");
        (await Refused(new { name = "x", dataset = "{\"input\":\"a\",\"expected\":\"ham\"}" }))["dataset"]![0]!.GetValue<string>().Should().Contain("two distinct");
        (await Refused(new { name = "", dataset = "x", datasetPath = "y", candidates = new[] { "magic" }, testFraction = 0.9 })).Select(e => e.Key)
            .Should().BeEquivalentTo(["name", "dataset", "candidates", "testFraction"]);

        (await http.GetFromJsonAsync<JsonObject>("api/experiments", ct))!["total"]!.GetValue<int>().Should().Be(0);
    }

    [Fact]
    public async Task Create_BadTaskFields_Is400NamingTheFieldAndRecordsNothing()
    {
        var ct = TestContext.Current.CancellationToken;
        var (app, http) = await EmbeddedExperimentTests.StartEmbeddedAsync(TestSupport.TestInfrastructure.TempDataFolder("api-bad-task"));
        await using var _ = app;
        const string labelled = "{\"input\":\"a\",\"expected\":\"ham\"}\n{\"input\":\"b\",\"expected\":\"spam\"}";
        const string references = "{\"input\":\"a\",\"expected\":{\"x\":1}}\n{\"input\":\"b\",\"expected\":\"text\"}";

        async Task<JsonObject> Refused(object body)
        {
            var response = await http.PostAsJsonAsync("api/experiments", body, ct);
            response.StatusCode.Should().Be(HttpStatusCode.BadRequest, await response.Content.ReadAsStringAsync(ct));
            response.Content.Headers.ContentType!.MediaType.Should().Be("application/problem+json");
            return (await response.Content.ReadFromJsonAsync<JsonObject>(ct))!["errors"]!.AsObject();
        }

        // Names only: an enum's number or an unknown name is refused, not mapped.
        (await Refused(new { name = "x", dataset = labelled, task = "1" }))["task"]![0]!.GetValue<string>().Should().Contain("classification, generation");
        (await Refused(new { name = "x", dataset = labelled, task = "summarise" })).Select(e => e.Key).Should().BeEquivalentTo(["task"]);
        (await Refused(new { name = "x", dataset = labelled, instruction = "Extract it." })).Select(e => e.Key).Should().BeEquivalentTo(["instruction"]);
        (await Refused(new { name = "x", dataset = references, task = "generation", candidates = new[] { "knn", "nearest" } })).Select(e => e.Key).Should().BeEquivalentTo(["candidates"]);
        (await Refused(new { name = "x", dataset = references, task = "generation", instruction = "Say {{$input}} twice", judgeEndpoint = "" })).Select(e => e.Key)
            .Should().BeEquivalentTo(["instruction", "judgeEndpoint"]);
        // A reference may be any JSON value for generation, but a label must be a string for classification.
        (await Refused(new { name = "x", dataset = references }))["dataset"]![0]!.GetValue<string>().Should().Be("line 1: 'expected' must be a string");
        (await Refused(new { name = "x", dataset = "{\"input\":\"a\"}", task = "generation" }))["dataset"]![0]!.GetValue<string>().Should().StartWith("line 1: 'expected' is missing");

        (await http.GetFromJsonAsync<JsonObject>("api/experiments", ct))!["total"]!.GetValue<int>().Should().Be(0);
    }

    [Fact]
    public async Task Cancel_UnknownOrFinished_Is404Or409()
    {
        var ct = TestContext.Current.CancellationToken;
        var (app, http) = await EmbeddedExperimentTests.StartEmbeddedAsync(TestSupport.TestInfrastructure.TempDataFolder("api-cancel"));
        await using var _ = app;

        (await http.PostAsync($"api/experiments/{Guid.NewGuid()}/cancel", null, ct)).StatusCode.Should().Be(HttpStatusCode.NotFound);

        var created = await http.PostAsJsonAsync("api/experiments", new { name = "knn", dataset = await File.ReadAllTextAsync(EmbeddedExperimentTests.SamplePath, ct), candidates = new[] { "knn" } }, ct);
        var id = (await created.Content.ReadFromJsonAsync<JsonObject>(ct))!["id"]!.GetValue<Guid>();
        (await EmbeddedExperimentTests.WaitForExperimentAsync(http, id, TimeSpan.FromMinutes(2)))["status"]!.GetValue<string>().Should().Be("succeeded");

        var cancel = await http.PostAsync($"api/experiments/{id}/cancel", null, ct);
        cancel.StatusCode.Should().Be(HttpStatusCode.Conflict);
        (await cancel.Content.ReadFromJsonAsync<JsonObject>(ct))!["detail"]!.GetValue<string>().Should().Contain("succeeded");
    }
}

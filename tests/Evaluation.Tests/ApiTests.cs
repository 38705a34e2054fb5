using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using AspireTune.Contracts.Evaluation;
using AspireTune.Evaluation.Apis;

namespace AspireTune.Evaluation.Tests;

public class ApiTests
{
    [Fact]
    public async Task Prompts_PostSameNameTwice_ImmutableVersionsAndMovableLabel()
    {
        await using var host = EvaluationHost.Start();
        var v1 = await host.AddPromptAsync("greet", "Hello {{$input}}", null, "production");
        var v2 = await host.AddPromptAsync("greet", "Hi {{$input}}!");

        v1.Version.Should().Be(1);
        v2.Version.Should().Be(2);
        v2.Ref.Should().Be("greet@2");
        (await host.Client.GetFromJsonAsync<PromptVersionResponse>("/api/evaluation/prompts/greet/versions/1", EvaluationHost.Json))!.Template.Should().Be("Hello {{$input}}");

        var move = await host.Client.PutAsJsonAsync("/api/evaluation/prompts/greet/labels/production", new { version = 2 });
        move.StatusCode.Should().Be(HttpStatusCode.OK);
        var list = (await host.Client.GetFromJsonAsync<List<PromptSummary>>("/api/evaluation/prompts", EvaluationHost.Json))!;
        list.Single().Labels["production"].Should().Be(2);
        list.Single().LatestVersion.Should().Be(2);
        var missing = await host.Client.PutAsJsonAsync("/api/evaluation/prompts/greet/labels/production", new { version = 9 });
        missing.StatusCode.Should().Be(HttpStatusCode.NotFound);
        (await missing.Content.ReadAsStringAsync()).Should().Contain("no version 9");
    }

    [Fact]
    public async Task Prompts_UnknownVariable_Returns400NamingVariable()
    {
        await using var host = EvaluationHost.Start();

        var response = await host.Client.PostAsJsonAsync("/api/evaluation/prompts", new { name = "bad", template = "Q: {{$question}}" });

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        problem.GetProperty("errors").GetProperty("template")[0].GetString().Should().Contain("unknown variable '$question'");
    }

    [Fact]
    public async Task Datasets_BadLines_Returns400ByLineNumberAndStoresNothing()
    {
        await using var host = EvaluationHost.Start();

        var response = await host.Client.PostAsync("/api/evaluation/datasets?name=broken",
            new StringContent("{\"input\":\"ok\"}\n{\"expected\":\"x\"}\n{oops\n", Encoding.UTF8, "application/jsonl"));

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        problem.GetProperty("errors").GetProperty("line 2")[0].GetString().Should().Contain("'input' is missing");
        problem.GetProperty("errors").GetProperty("line 3")[0].GetString().Should().Contain("not valid JSON");
        problem.GetProperty("detail").GetString().Should().Contain("2 of 3 lines");
        (await host.Client.GetStringAsync("/api/evaluation/datasets")).Should().Be("[]");
    }

    [Fact]
    public async Task Datasets_SameBytesTwice_SameDatasetBySha256()
    {
        await using var host = EvaluationHost.Start();
        var first = await host.UploadDatasetAsync("a", "{\"input\":\"x\",\"expected\":\"y\"}\n");

        var again = await host.Client.PostAsync("/api/evaluation/datasets?name=a", new StringContent("{\"input\":\"x\",\"expected\":\"y\"}\n"));

        again.StatusCode.Should().Be(HttpStatusCode.OK);
        (await again.Content.ReadFromJsonAsync<DatasetResponse>(EvaluationHost.Json))!.Sha256.Should().Be(first.Sha256);
        first.Items.Should().Be(1);
        first.Sha256.Should().HaveLength(64);
    }

    [Fact]
    public async Task Runs_UnknownReferences_Returns400ListingEachProblem()
    {
        await using var host = EvaluationHost.Start();
        var dataset = await host.UploadDatasetAsync("a", "{\"input\":\"x\"}\n");

        var response = await host.Client.PostAsJsonAsync("/api/evaluation/runs", new
        {
            prompts = new[] { "ghost:production" },
            modelEndpoints = new[] { "nowhere" },
            dataset = dataset.Sha256,
            scorers = new[] { "bleu", "regex:(" },
            repeats = 0,
        });

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        var errors = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("errors");
        errors.GetProperty("prompts")[0].GetString().Should().Contain("no label 'production'");
        errors.GetProperty("modelEndpoints")[0].GetString().Should().Contain("'nowhere' does not exist");
        errors.GetProperty("scorers").GetArrayLength().Should().Be(2);
        errors.GetProperty("repeats")[0].GetString().Should().Contain("between 1 and 100");
        (await host.Client.GetStringAsync("/api/evaluation/runs")).Should().Be("[]");
    }

    [Fact]
    public async Task Models_InvalidAndDuplicate_ProblemDetails()
    {
        await using var host = EvaluationHost.Start();
        await host.AddEndpointAsync("m1", "http://127.0.0.1:9/v1", "x");

        var duplicate = await host.Client.PostAsJsonAsync("/api/evaluation/models", new { id = "m1", kind = "OpenAICompatible", baseUrl = "http://127.0.0.1:9/v1", model = "x" });
        var invalid = await host.Client.PostAsJsonAsync("/api/evaluation/models", new { id = "bad id", kind = "OpenAICompatible", baseUrl = "ftp://x", model = "", maxConcurrency = 0 });

        duplicate.StatusCode.Should().Be(HttpStatusCode.Conflict);
        invalid.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        var errors = (await invalid.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("errors");
        foreach (var field in new[] { "id", "baseUrl", "model", "maxConcurrency" })
            errors.TryGetProperty(field, out _).Should().BeTrue(field);
        (await host.Client.GetAsync("/api/evaluation/models/absent")).StatusCode.Should().Be(HttpStatusCode.NotFound);
        (await host.Client.DeleteAsync("/api/evaluation/models/m1")).StatusCode.Should().Be(HttpStatusCode.NoContent);
    }
}

using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using AspireTune.FineTuning.Tests;

namespace AspireTune.Platform.Tests;

/// <summary>
/// The whole decision on a checkpoint a user brought: a Llama-3.2-Instruct-like folder (as Hugging Face publishes it,
/// see <see cref="PublishedCheckpoints"/>) imported through the API and named as the experiment's <c>baseModel</c>.
/// </summary>
public sealed class ImportedBaseModelTests
{
    [Fact]
    public async Task Experiment_WithAnImportedLlama32AsBaseModel_EveryCandidateTakesPartAndTheFineTunedOneTrainsFromIt()
    {
        var ct = TestContext.Current.CancellationToken;
        var data = TestSupport.TestInfrastructure.TempDataFolder("embedded-imported");
        PublishedCheckpoints.Llama32Instruct(Path.Combine(data, "imports", "llama32"));
        // One short epoch four steps, one checkpoint and evaluation at its end: seconds on two cores.
        var (app, http) = await EmbeddedExperimentTests.StartEmbeddedAsync(data,
            "--FineTuning:ExactMatchExamples=0",
            "--FineTuning:PollIntervalMs=200",
            "--Evaluation:PollIntervalMs=200",
            "--Outbox:PollIntervalMs=250",
            "--Comparison:FineTuningHyperparameters:n_epochs=1",
            "--Comparison:FineTuningHyperparameters:batch_size=8",
            "--Comparison:FineTuningHyperparameters:max_seq_len=1024",
            "--Comparison:FineTuningHyperparameters:checkpoint_interval=4",
            "--Comparison:FineTuningHyperparameters:eval_interval=4");
        await using var _ = app;
        var imported = await http.PostAsJsonAsync("api/models/import", new { path = "imports/llama32", name = "llama32" }, ct);
        imported.StatusCode.Should().Be(HttpStatusCode.Created, await imported.Content.ReadAsStringAsync(ct));

        // Forty emails of the bundled sample, about a third spam.
        var dataset = string.Join('\n', File.ReadAllLines(EmbeddedExperimentTests.SamplePath).Where((_, i) => i % 7 == 0).Take(40));
        var response = await http.PostAsJsonAsync("api/experiments", new { name = "imported-base", dataset, baseModel = "llama32" }, ct);
        response.StatusCode.Should().Be(HttpStatusCode.Accepted, await response.Content.ReadAsStringAsync(ct));
        var id = (await response.Content.ReadFromJsonAsync<JsonObject>(ct))!["id"]!.GetValue<Guid>();

        var experiment = await EmbeddedExperimentTests.WaitForExperimentAsync(http, id, TimeSpan.FromMinutes(3));

        experiment["status"]!.GetValue<string>().Should().Be("succeeded", experiment.ToJsonString());
        experiment["candidates"]!.AsArray().Select(c => c!["kind"]!.GetValue<string>()).Should().BeEquivalentTo(["prompted", "retrieval", "fine-tuned", "knn"]);
        experiment["candidates"]!.AsArray().Should().OnlyContain(c => c!["status"]!.GetValue<string>() == "succeeded", experiment.ToJsonString());
        var report = (await http.GetFromJsonAsync<JsonObject>($"api/experiments/{id}/report.json", ct))!;
        foreach (var c in report["candidates"]!.AsArray().Select(c => c!.AsObject()))
            (c["errors"]!.GetValue<int>() / (double)c["items"]!.GetValue<int>()).Should().BeLessThanOrEqualTo(0.05, $"{c["name"]} must take part: {c.ToJsonString()}");
        var models = (await http.GetFromJsonAsync<JsonObject>("api/models", ct))!["data"]!.AsArray();
        models.Should().Contain(m => m!["lineage"]!["base_model"] != null && m["lineage"]!["base_model"]!.GetValue<string>() == "llama32",
            "the fine-tuned candidate was trained from the imported checkpoint");
    }
}

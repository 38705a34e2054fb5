using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;

namespace AspireTune.Platform.Tests;

/// <summary>
/// The embedded workflow, defaults only, on a corpus no one here chose the prompts for: State of the Union passages
/// with the president's party (samples/sotu), against the built-in model and its 1,024-token context.
/// </summary>
public sealed class SecondCorpusTests
{
    internal static string SotuPath => Path.Combine(EmbeddedExperimentTests.RepositoryRoot(), "samples", "sotu", "sotu.jsonl");

    [Fact]
    public async Task Experiment_StateOfTheUnionOnTheBuiltInModel_EveryCandidateAnswersAndRetrievalShowsTheExamplesThatFit()
    {
        var ct = TestContext.Current.CancellationToken;
        var (app, http) = await EmbeddedExperimentTests.StartEmbeddedAsync(TestSupport.TestInfrastructure.TempDataFolder("embedded-sotu"),
            "--Comparison:FineTuningHyperparameters:n_epochs=1",
            "--Comparison:FineTuningHyperparameters:batch_size=16",
            "--Comparison:FineTuningHyperparameters:max_seq_len=1024",
            "--Comparison:FineTuningHyperparameters:checkpoint_interval=4",
            "--Comparison:FineTuningHyperparameters:eval_interval=4");
        await using var _ = app;

        var response = await http.PostAsJsonAsync("api/experiments", new
        {
            name = "sotu-parties",
            dataset = await File.ReadAllTextAsync(SotuPath, ct),
            nonInferiorityMargin = 0.05,
        }, ct);
        response.StatusCode.Should().Be(HttpStatusCode.Accepted, await response.Content.ReadAsStringAsync(ct));
        var id = (await response.Content.ReadFromJsonAsync<JsonObject>(ct))!["id"]!.GetValue<Guid>();

        var experiment = await EmbeddedExperimentTests.WaitForExperimentAsync(http, id, TimeSpan.FromMinutes(8));

        experiment["status"]!.GetValue<string>().Should().Be("succeeded", experiment.ToJsonString());
        experiment["candidates"]!.AsArray().Select(c => c!["kind"]!.GetValue<string>()).Should().BeEquivalentTo(["prompted", "retrieval", "fine-tuned", "knn"]);
        experiment["candidates"]!.AsArray().Should().OnlyContain(c => c!["status"]!.GetValue<string>() == "succeeded", experiment.ToJsonString());
        var report = (await http.GetFromJsonAsync<JsonObject>($"api/experiments/{id}/report.json", ct))!;
        var candidates = report["candidates"]!.AsArray().Select(c => c!.AsObject()).ToList();
        candidates.Should().HaveCount(4);
        foreach (var c in candidates)
            (c["errors"]!.GetValue<int>() / (double)c["items"]!.GetValue<int>()).Should().BeLessThanOrEqualTo(0.05, $"{c["name"]} must take part: {c.ToJsonString()}");

        // 4 retrieved passages of about 380 bytes do not fit 1,024 byte tokens with the prompt; the ones that fit are shown.
        var retrieval = candidates.Single(c => c["kind"]!.GetValue<string>() == "retrieval");
        retrieval["examplesRetrievedMean"]!.GetValue<double>().Should().Be(4);
        retrieval["examplesShownMean"]!.GetValue<double>().Should().BeGreaterThan(0).And.BeLessThan(4);
        report["nonInferiority"]!.AsArray().Should().HaveCount(3).And.OnlyContain(v => v!["margin"]!.GetValue<double>() == 0.05);
        report["costs"]!.AsArray().Should().HaveCount(4);
        report["confusion"]!.AsArray().Should().HaveCount(4);
        report["cheapestByVolume"]!.AsArray().Should().NotBeEmpty();
        report["decision"]!.GetValue<string>().Should().Contain("Total cost of ownership").And.Contain("Non-inferiority");
        (await http.GetStringAsync($"api/experiments/{id}/report", ct)).Should().Contain("Daily cost against volume").And.Contain("Confusion matrices");
    }
}

using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using AspireTune.MockOpenAI;

namespace AspireTune.Platform.Tests;

/// <summary>
/// A generation task end to end in the embedded host, defaults only: extracting fields of the sample emails to JSON
/// (samples/email-extraction). The built-in model is fine-tuned on input -> reference; a hosted model (a real
/// OpenAI-compatible server on 127.0.0.1) is prompted and judges; every answer is scored against its reference.
/// </summary>
public sealed class GenerationTaskTests
{
    private static string EmailsPath => Path.Combine(EmbeddedExperimentTests.RepositoryRoot(), "samples", "email-extraction", "emails.jsonl");

    [Fact]
    public async Task Experiment_ExtractionToJson_ScoresEveryCandidateAgainstTheReferencesAndReportsTheGenerationMetrics()
    {
        var ct = TestContext.Current.CancellationToken;
        // The hosted model reads the subject of the email it is asked about (the last "Input:" of the prompt) and
        // guesses the rest from it; as the judge it gives every answer 7 of 10.
        await using var model = await MockOpenAIServer.StartAsync(configure: o =>
        {
            o.Rules.Add(new MockRule { Pattern = @"Grade \(1-10\):", Reply = "7\nClose to the expected answer." });
            o.Rules.Add(new MockRule { Pattern = @"[\s\S]*Input: Subject: (Re: [^\n]*)\n", Reply = "{\"subject\": \"$1\", \"is_reply\": true, \"category\": \"ham\"}" });
            o.Rules.Add(new MockRule { Pattern = @"[\s\S]*Input: Subject: ([^\n]*)\n", Reply = "{\"subject\": \"$1\", \"is_reply\": false, \"category\": \"spam\"}" });
            o.Fallback = "no idea";
        }, ct: ct);
        var (app, http) = await EmbeddedExperimentTests.StartEmbeddedAsync(TestSupport.TestInfrastructure.TempDataFolder("embedded-generation"),
            "--Comparison:FineTuningHyperparameters:n_epochs=1",
            "--Comparison:FineTuningHyperparameters:batch_size=8",
            "--Comparison:FineTuningHyperparameters:checkpoint_interval=2",
            "--Comparison:FineTuningHyperparameters:eval_interval=2");
        await using var _ = app;
        foreach (var id in new[] { "mock-gpt", "mock-judge" })
            (await http.PutAsJsonAsync($"api/evaluation/models/{id}", new
            {
                id, kind = "OpenAICompatible", baseUrl = model.BaseUrl, model = id,
                inputPricePerMillion = 0.15, outputPricePerMillion = 0.6, maxConcurrency = 8,
            }, ct)).EnsureSuccessStatusCode();

        var response = await http.PostAsJsonAsync("api/experiments", new
        {
            name = "email-extraction",
            dataset = await File.ReadAllTextAsync(EmailsPath, ct),
            task = "generation",
            instruction = "Extract the email's subject, whether it is a reply, and whether it is ham or spam, as JSON.",
            modelEndpoints = new[] { "mock-gpt" },
            judgeEndpoint = "mock-judge",
        }, ct);
        response.StatusCode.Should().Be(HttpStatusCode.Accepted, await response.Content.ReadAsStringAsync(ct));
        var experimentId = (await response.Content.ReadFromJsonAsync<JsonObject>(ct))!["id"]!.GetValue<Guid>();

        var experiment = await EmbeddedExperimentTests.WaitForExperimentAsync(http, experimentId, TimeSpan.FromMinutes(6));

        experiment["status"]!.GetValue<string>().Should().Be("succeeded", experiment.ToJsonString());
        experiment["task"]!.GetValue<string>().Should().Be("generation");
        experiment["candidates"]!.AsArray().Select(c => c!["name"]!.GetValue<string>())
            .Should().BeEquivalentTo(["prompted:mock-gpt", "retrieval:mock-gpt", "fine-tuned:aspiretune-tiny", "knn"]);
        experiment["candidates"]!.AsArray().Should().OnlyContain(c => c!["status"]!.GetValue<string>() == "succeeded", experiment.ToJsonString());
        experiment["curation"]!["referenceFields"]!.AsArray().Select(f => f!.GetValue<string>()).Should().Equal("subject", "is_reply", "category");

        var report = (await http.GetFromJsonAsync<JsonObject>($"api/experiments/{experimentId}/report.json", ct))!;
        report["task"]!.GetValue<string>().Should().Be("generation");
        report["primaryMetric"]!.GetValue<string>().Should().Be("json_fields");
        report["confusion"]!.AsArray().Should().BeEmpty();
        var candidates = report["candidates"]!.AsArray().Select(c => c!.AsObject()).ToDictionary(c => c["name"]!.GetValue<string>());
        var testItems = experiment["curation"]!["test"]!.GetValue<int>();
        testItems.Should().BeGreaterThan(5);
        foreach (var c in candidates.Values)
        {
            c["items"]!.GetValue<int>().Should().Be(testItems);
            c["errors"]!.GetValue<int>().Should().Be(0, c.ToJsonString());
            // The kNN baseline's answers are no model's: the judge, a model call within a run, does not score them.
            c["metrics"]!.AsArray().Select(m => m!["name"]!.GetValue<string>()).Should().BeEquivalentTo(
                c["name"]!.GetValue<string>() == "knn" ? ["exact", "token_f1", "rouge_l", "json_fields"] : ["exact", "token_f1", "rouge_l", "json_fields", "judge"]);
            var fields = c["metrics"]!.AsArray().Single(m => m!["name"]!.GetValue<string>() == "json_fields")!;
            c["accuracy"]!.GetValue<double>().Should().Be(fields["value"]!.GetValue<double>(), "the primary metric is json_fields");
        }
        var prompted = candidates["prompted:mock-gpt"];
        // Subject and reply flag are read off the input; the category guess is right for replies (ham) and for spam:
        // at least two of three fields on every item.
        prompted["accuracy"]!.GetValue<double>().Should().BeGreaterThanOrEqualTo(2 / 3.0);
        prompted["metrics"]!.AsArray().Single(m => m!["name"]!.GetValue<string>() == "judge")!["value"]!.GetValue<double>().Should().BeApproximately(0.7, 1e-9);
        candidates["retrieval:mock-gpt"]["examplesShownMean"]!.GetValue<double>().Should().BeGreaterThan(0);
        report["pairwise"]!.AsArray().Should().HaveCount(3);
        report["nonInferiority"]!.AsArray().Should().HaveCount(3);
        report["decision"]!.GetValue<string>().Should().Contain("mean json_fields").And.Contain("sign test");

        // The fine-tuned candidate's curves and the verdict read from them, in the report and the decision.
        var training = report["training"]!;
        training["candidate"]!.GetValue<string>().Should().Be("fine-tuned:aspiretune-tiny");
        training["verdict"]!.GetValue<string>().Should().BeOneOf("good_fit", "overfitting", "underfitting", "inconclusive");
        training["curve"]!.AsArray().Should().Contain(p => p!["validLoss"] != null);
        training["rule"]!.GetValue<string>().Should().Be(AspireTune.Engine.Training.FitAnalysis.Rule, "the report states the rule the training applied");
        report["decision"]!.GetValue<string>().Should().Contain("Training of fine-tuned:aspiretune-tiny:");

        var html = await http.GetStringAsync($"api/experiments/{experimentId}/report", ct);
        html.Should().Contain("Mean json_fields on the held-out test split").And.Contain("json_fields (primary)").And.Contain("rouge_l").And.Contain("sign test p")
            .And.Contain("Training and validation loss by step").And.Contain("<polyline").And.Contain("Rule: " + WebUtility.HtmlEncode(AspireTune.Engine.Training.FitAnalysis.Rule));
    }
}

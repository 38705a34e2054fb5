using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using AspireTune.MockOpenAI;

namespace AspireTune.Platform.Tests;

/// <summary>Classification scored as evaluation harnesses do: by the label the model finds most likely, beside its greedy text.</summary>
public sealed class LabelLikelihoodTests
{
    [Fact]
    public async Task Experiment_GreedyAnswerIsANearMiss_LikelihoodPicksTheRightLabelAndInvalidAnswersAreCounted()
    {
        var ct = TestContext.Current.CancellationToken;
        // The model writes "spma" for everything (a near-miss, not a label), but its log-probabilities prefer
        // "spam" after a spammy message and "ham" after any other: what a weak model that knows the answer looks like.
        await using var model = await MockOpenAIServer.StartAsync(configure: o =>
        {
            o.Fallback = "spma";
            o.Scoring = new MockScoring
            {
                Rules =
                {
                    new MockLogprobRule { Pattern = @"Message:[\s\S]*\b(click|free|money|offer|unsubscribe|remove|order|\$)[\s\S]*spam$", Logprob = -0.1 },
                    new MockLogprobRule { Pattern = "ham$", Logprob = -0.5 },
                },
            };
        }, ct: ct);
        var (app, http) = await EmbeddedExperimentTests.StartEmbeddedAsync(TestSupport.TestInfrastructure.TempDataFolder("embedded-likelihood"));
        await using var _ = app;
        (await http.PutAsJsonAsync("api/evaluation/models/mock-weak", new { id = "mock-weak", kind = "OpenAICompatible", baseUrl = model.BaseUrl, model = "mock-weak" }, ct)).EnsureSuccessStatusCode();

        var response = await http.PostAsJsonAsync("api/experiments", new
        {
            name = "likelihood",
            dataset = await File.ReadAllTextAsync(EmbeddedExperimentTests.SamplePath, ct),
            candidates = new[] { "prompted", "knn" },
            modelEndpoints = new[] { "mock-weak" },
        }, ct);
        response.StatusCode.Should().Be(HttpStatusCode.Accepted);
        var id = (await response.Content.ReadFromJsonAsync<JsonObject>(ct))!["id"]!.GetValue<Guid>();
        var experiment = await EmbeddedExperimentTests.WaitForExperimentAsync(http, id, TimeSpan.FromMinutes(4));

        experiment["status"]!.GetValue<string>().Should().Be("succeeded", experiment.ToJsonString());
        var report = (await http.GetFromJsonAsync<JsonObject>($"api/experiments/{id}/report.json", ct))!;
        var prompted = report["candidates"]!.AsArray().Single(c => c!["name"]!.GetValue<string>() == "prompted:mock-weak")!;
        prompted["accuracy"]!.GetValue<double>().Should().Be(0, "no greedy answer names a label");
        prompted["invalid"]!.GetValue<int>().Should().Be(prompted["items"]!.GetValue<int>()).And.Be(60);
        prompted["errors"]!.GetValue<int>().Should().Be(0);
        prompted["likelihoodAccuracy"]!.GetValue<double>().Should().BeGreaterThan(0.6);
        report["candidates"]!.AsArray().Single(c => c!["name"]!.GetValue<string>() == "knn")!["likelihoodAccuracy"].Should().BeNull();
        report["decision"]!.GetValue<string>().Should().Contain("Invalid answers").And.Contain("most likely");
        var confusion = report["confusion"]!.AsArray().Single(m => m!["candidate"]!.GetValue<string>() == "prompted:mock-weak")!;
        confusion["columns"]!.AsArray().Select(x => x!.GetValue<string>()).Should().Contain("(invalid)");
    }

    [Fact]
    public async Task Experiment_PromptingTheBuiltInModel_ItsAnswersAreConstrainedToTheLabels()
    {
        var ct = TestContext.Current.CancellationToken;
        // The built-in model is random: unconstrained, its greedy text is noise. Served here, it is asked for a label
        // only (guided_choice), so every answer names one and none is invalid.
        var (app, http) = await EmbeddedExperimentTests.StartEmbeddedAsync(TestSupport.TestInfrastructure.TempDataFolder("embedded-constrained"));
        await using var _ = app;
        var response = await http.PostAsJsonAsync("api/experiments", new
        {
            name = "constrained",
            dataset = await File.ReadAllTextAsync(EmbeddedExperimentTests.SamplePath, ct),
            candidates = new[] { "prompted" },
        }, ct);
        response.StatusCode.Should().Be(HttpStatusCode.Accepted);
        var id = (await response.Content.ReadFromJsonAsync<JsonObject>(ct))!["id"]!.GetValue<Guid>();
        var experiment = await EmbeddedExperimentTests.WaitForExperimentAsync(http, id, TimeSpan.FromMinutes(4));

        experiment["status"]!.GetValue<string>().Should().Be("succeeded", experiment.ToJsonString());
        var report = (await http.GetFromJsonAsync<JsonObject>($"api/experiments/{id}/report.json", ct))!;
        var prompted = report["candidates"]!.AsArray().Single()!;
        prompted["name"]!.GetValue<string>().Should().StartWith("prompted:aspiretune-");
        prompted["items"]!.GetValue<int>().Should().Be(60);
        prompted["errors"]!.GetValue<int>().Should().Be(0);
        prompted["invalid"]!.GetValue<int>().Should().Be(0, "a constrained answer is always a label");
        var confusion = report["confusion"]!.AsArray().Single()!;
        var invalidColumn = confusion["columns"]!.AsArray().Select(x => x!.GetValue<string>()).ToList().IndexOf("(invalid)");
        confusion["counts"]!.AsArray().Sum(row => row!.AsArray()[invalidColumn]!.GetValue<int>()).Should().Be(0);
        confusion["counts"]!.AsArray().Sum(row => row!.AsArray().Take(2).Sum(n => n!.GetValue<int>())).Should().Be(60, "every answer is ham or spam");
    }
}

using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using AspireTune.Contracts.Evaluation;
using AspireTune.Evaluation.Data;
using AspireTune.MockOpenAI;
using AspireTune.ServiceDefaults.Artifacts;
using Microsoft.Extensions.DependencyInjection;

namespace AspireTune.Evaluation.Tests;

/// <summary><c>constrainToLabels</c> on <c>POST /api/evaluation/runs</c> and on the <c>RunEvaluation</c> command: one path, one check.</summary>
public sealed class ConstrainToLabelsTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>A model that answers near-misses of the labels: free text maps to no label, a constrained answer to the closest.</summary>
    private static void NearMisses(MockOpenAIOptions o)
    {
        o.Rules.Add(new MockRule { Pattern = @"\b(win|free|prize)\b", Reply = "spamm" });
        o.Fallback = "hamm";
    }

    [Fact]
    public async Task CreateRun_ConstrainToLabels_TheMockReceivesTheLabelsAsGuidedChoiceAndEveryAnswerIsALabel()
    {
        await using var mock = await MockOpenAIServer.StartAsync(configure: NearMisses, ct: Ct);
        await using var host = EvaluationHost.Start();
        await host.AddEndpointAsync("served", mock.BaseUrl, "served-model");
        await host.AddPromptAsync("spam", RunTests.ClassifierTemplate);
        var dataset = await host.UploadDatasetAsync("spam", RunTests.SpamJsonl);
        object Request(bool constrain) => new { prompts = new[] { "spam" }, modelEndpoints = new[] { "served" }, dataset = dataset.Sha256, scorers = new[] { "label" }, constrainToLabels = constrain };

        var free = await host.WaitForRunAsync((await host.StartRunAsync(Request(false))).Id);
        var guidedBefore = mock.State.GuidedRequests;
        var created = await host.StartRunAsync(Request(true));
        var constrained = await host.WaitForRunAsync(created.Id);

        // Free answers are near-misses: every one is invalid, and no request carried guided_choice.
        free.Status.Should().Be(RunStatus.Completed);
        free.Summaries!.Single().ConfusionMatrix.Should().OnlyContain(c => c.Predicted == EvaluationItemResult.NoLabel);
        guidedBefore.Should().Be(0);
        // Constrained: the run says so, every call reached the mock with the dataset's labels, every answer is one.
        created.Spec!.ConstrainToLabels.Should().BeTrue();
        constrained.Status.Should().Be(RunStatus.Completed);
        mock.State.GuidedRequests.Should().Be(RunTests.SpamItems.Length);
        foreach (var (input, _) in RunTests.SpamItems)
            mock.State.GuidedChoiceFor("served-model", "Classify as spam or ham: " + input).Should().Equal("ham", "spam");
        var summary = constrained.Summaries!.Single();
        summary.Errors.Should().Be(0);
        summary.ConfusionMatrix.Should().NotContain(c => c.Predicted == EvaluationItemResult.NoLabel);
        summary.Metrics.Single(m => m.Name == "label_accuracy").Value.Should().BeApproximately(10.0 / 12, 1e-9);
        (await host.ResultsAsync(constrained.Id)).Select(r => r.GetProperty("output").GetString()).Should().OnlyContain(o => o == "spam" || o == "ham");
    }

    [Fact]
    public async Task CreateRun_LabelSetBeyondTheDataset_AnswersAreReadScoredAndConstrainedAmongEveryLabel()
    {
        // A label the dataset (a test split) lacks: the model may still answer it, and it is then wrong, not invalid.
        await using var mock = await MockOpenAIServer.StartAsync(configure: o =>
        {
            o.Rules.Add(new MockRule { Pattern = "claim your prize", Reply = "phish" });
            NearMisses(o);
        }, ct: Ct);
        await using var host = EvaluationHost.Start();
        await host.AddEndpointAsync("served", mock.BaseUrl, "served-model");
        await host.AddPromptAsync("spam", RunTests.ClassifierTemplate);
        var dataset = await host.UploadDatasetAsync("spam", RunTests.SpamJsonl);
        var created = await host.StartRunAsync(new
        {
            prompts = new[] { "spam" }, modelEndpoints = new[] { "served" }, dataset = dataset.Sha256, scorers = new[] { "label" },
            constrainToLabels = true, labels = new[] { "spam", "phishing", "ham" },
        });
        var constrained = await host.WaitForRunAsync(created.Id);

        created.Spec!.Labels.Should().Equal("ham", "phishing", "spam");
        mock.State.GuidedChoiceFor("served-model", "Classify as spam or ham: claim your prize").Should().Equal("ham", "phishing", "spam");
        var cells = constrained.Summaries!.Single().ConfusionMatrix;
        cells.Should().ContainSingle(c => c.Expected == "spam" && c.Predicted == "phishing" && c.Count == 1);
        cells.Should().NotContain(c => c.Predicted == EvaluationItemResult.NoLabel);
    }

    [Theory]
    [InlineData("""["ham"]""", "label", "lines 1, 2, 3, 4, 5 and 1 more have another")]
    [InlineData("""["ham","spam","ham"]""", "label", "a label twice")]
    [InlineData("""["ham","spam",""]""", "label", "none empty")]
    [InlineData("""["ham","spam",null]""", "label", "null item")]
    [InlineData("""["ham","spam"]""", "exact", "'label' or 'label-likelihood' scorer")]
    public async Task CreateRun_LabelSetThatCannotStand_Is400NamingLabelsAndCallsNothing(string labels, string scorer, string reason)
    {
        await using var mock = await MockOpenAIServer.StartAsync(configure: NearMisses, ct: Ct);
        await using var host = EvaluationHost.Start();
        await host.AddEndpointAsync("served", mock.BaseUrl, "served-model");
        await host.AddPromptAsync("spam", RunTests.ClassifierTemplate);
        var dataset = await host.UploadDatasetAsync("spam", RunTests.SpamJsonl);

        var response = await host.Client.PostAsync("/api/evaluation/runs", new StringContent(
            $$"""{"prompts":["spam"],"modelEndpoints":["served"],"dataset":"{{dataset.Sha256}}","scorers":["{{scorer}}"],"labels":{{labels}}}""", System.Text.Encoding.UTF8, "application/json"), Ct);

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        var errors = JsonNode.Parse(await response.Content.ReadAsStringAsync(Ct))!["errors"]!.AsObject();
        errors.Select(e => e.Key).Should().Equal(["labels"]);
        errors["labels"]!.AsArray().Select(m => m!.GetValue<string>()).Should().Contain(m => m.Contains(reason));
        (await host.Client.GetStringAsync("/api/evaluation/runs", Ct)).Should().Be("[]");
        mock.State.Requests.Should().Be(0);
    }

    public static TheoryData<string, string, string, string> CannotApply => new()
    {
        // case, scorer, endpoint kind, dataset (JSONL) -> what the 400 says
        { "scored as exact text", "exact", "OpenAICompatible", RunTests.SpamJsonl },
        { "a hosted endpoint", "label", "OpenAI", RunTests.SpamJsonl },
        { "reference answers", "label", "OpenAICompatible", """{"input":"a","expected":"ham"}""" + "\n" + """{"input":"b","expected":{"subject":"hi"}}""" + "\n" },
        { "no labels", "label", "OpenAICompatible", """{"input":"a"}""" + "\n" + """{"input":"b","expected":null}""" + "\n" },
        { "a label too long", "label", "OpenAICompatible", """{"input":"a","expected":"ham"}""" + "\n" + $$"""{"input":"b","expected":"{{new string('x', 1001)}}"}""" + "\n" },
    };

    [Theory]
    [MemberData(nameof(CannotApply))]
    public async Task CreateRun_ConstrainToLabelsWhereItCannotApply_Is400NamingTheFieldAndCallsNothing(string @case, string scorer, string kind, string jsonl)
    {
        await using var mock = await MockOpenAIServer.StartAsync(configure: NearMisses, ct: Ct);
        await using var host = EvaluationHost.Start();
        (await host.Client.PostAsJsonAsync("/api/evaluation/models", new { id = "m", kind, baseUrl = mock.BaseUrl, model = "m" }, Ct)).StatusCode.Should().Be(HttpStatusCode.Created);
        await host.AddPromptAsync("spam", RunTests.ClassifierTemplate);
        var dataset = await host.UploadDatasetAsync("d", jsonl);

        var response = await host.Client.PostAsJsonAsync("/api/evaluation/runs",
            new { prompts = new[] { "spam" }, modelEndpoints = new[] { "m" }, dataset = dataset.Sha256, scorers = new[] { scorer }, constrainToLabels = true }, Ct);

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest, @case);
        var errors = JsonNode.Parse(await response.Content.ReadAsStringAsync(Ct))!["errors"]!.AsObject();
        errors.Select(e => e.Key).Should().Equal(["constrainToLabels"], @case);
        var message = errors["constrainToLabels"]!.AsArray().Should().ContainSingle().Subject!.GetValue<string>();
        message.Should().Contain(@case switch
        {
            "scored as exact text" => "'label' scorer",
            "a hosted endpoint" => "endpoint 'm' (kind OpenAI)",
            "reference answers" => "line 2 has a JSON value",
            "no labels" => "no line of the dataset has a non-empty 'expected'",
            _ => "line 2 has a longer one",
        });
        (await host.Client.GetStringAsync("/api/evaluation/runs", Ct)).Should().Be("[]");
        mock.State.Requests.Should().Be(0);
    }

    [Fact]
    public async Task RunEvaluation_ConstrainToLabelsWithTheExactScorer_PublishesEvaluationFailedNamingIt()
    {
        await using var host = EvaluationHost.Start();
        await using var mock = await MockOpenAIServer.StartAsync(configure: NearMisses, ct: Ct);
        await host.AddEndpointAsync("served", mock.BaseUrl, "served-model");
        await host.AddPromptAsync("spam", RunTests.ClassifierTemplate);
        var dataset = await host.Services.GetRequiredService<IArtifactStore>().PutAsync(
            new MemoryStream(System.Text.Encoding.UTF8.GetBytes(RunTests.SpamJsonl)), "datasets", "spam.jsonl", "application/jsonl", Ct);
        var command = new RunEvaluation { RunId = Guid.NewGuid(), Prompts = ["spam"], ModelEndpoints = ["served"], Dataset = dataset, Scorers = ["exact"], ConstrainToLabels = true };

        await host.Harness.Bus.Publish(command, Ct);
        await host.WaitForPublishedAsync<EvaluationFailed>(e => e.RunId == command.RunId);

        host.Published<EvaluationFailed>().Should().ContainSingle(e => e.RunId == command.RunId)
            .Which.Reason.Should().Contain("constrainToLabels").And.Contain("'label' scorer");
        mock.State.Requests.Should().Be(0);
    }
}

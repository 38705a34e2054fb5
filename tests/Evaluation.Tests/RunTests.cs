using System.Text.Json;
using AspireTune.Contracts.Evaluation;
using AspireTune.Evaluation.Data;
using AspireTune.MockOpenAI;
using AspireTune.ServiceDefaults.Artifacts;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace AspireTune.Evaluation.Tests;

public class RunTests
{
    internal const string ClassifierTemplate = "Classify as spam or ham: {{$input}}";

    internal static readonly (string Input, string Expected)[] SpamItems =
    [
        ("win a prize now", "spam"),
        ("free money", "spam"),
        ("you win big", "spam"),
        ("claim your prize", "spam"),
        ("free cruise", "spam"),
        ("buy cheap meds", "spam"), // no keyword: the mock says ham
        ("lunch at noon?", "ham"),
        ("meeting moved", "ham"),
        ("see you tomorrow", "ham"),
        ("free for a call?", "ham"), // keyword: the mock says spam
        ("project update", "ham"),
        ("call mom", "ham"),
    ];

    internal static string SpamJsonl => EvaluationHost.Jsonl(SpamItems.Select(i => new { input = i.Input, expected = i.Expected }));

    internal static void Classifier(MockOpenAIOptions o)
    {
        o.Rules.Add(new MockRule { Pattern = @"\b(win|free|prize)\b", Reply = "spam" });
        o.Fallback = "ham";
    }

    private static MetricValueView Metric(EvaluationSummary summary, string name) =>
        summary.Metrics.Where(m => m.Name == name).Select(m => new MetricValueView(m.Value, m.Lower, m.Upper)).Single();

    private sealed record MetricValueView(double Value, double? Lower, double? Upper);

    [Fact]
    public async Task Run_LabelScorer_SummaryEventArtifactAndCachedRerun()
    {
        await using var mock = await MockOpenAIServer.StartAsync(configure: Classifier);
        await using var host = EvaluationHost.Start();
        await host.AddEndpointAsync("clf", mock.BaseUrl, "clf-model", inputPrice: 1, outputPrice: 2);
        await host.AddPromptAsync("spam", ClassifierTemplate, null, "production");
        var dataset = await host.UploadDatasetAsync("spam", SpamJsonl);

        var request = new { prompts = new[] { "spam:production" }, modelEndpoints = new[] { "clf" }, dataset = dataset.Sha256, scorers = new[] { "label", "exact" } };
        var created = await host.StartRunAsync(request);
        created.Spec!.Prompts.Should().Equal("spam@1");
        var run = await host.WaitForRunAsync(created.Id);

        run.Status.Should().Be(RunStatus.Completed);
        run.CompletedCalls.Should().Be(12);
        var summary = run.Summaries!.Should().ContainSingle().Subject;
        summary.Prompt.Should().Be("spam@1");
        summary.Items.Should().Be(12);
        summary.Errors.Should().Be(0);
        var accuracy = Metric(summary, "label_accuracy");
        accuracy.Value.Should().BeApproximately(10.0 / 12, 1e-9);
        accuracy.Lower.Should().BeLessThan(accuracy.Value);
        accuracy.Upper.Should().BeGreaterThan(accuracy.Value).And.BeLessThanOrEqualTo(1);
        Metric(summary, "macro_f1").Value.Should().BeApproximately(10.0 / 12, 1e-9);
        Metric(summary, "exact").Value.Should().BeApproximately(10.0 / 12, 1e-9);
        summary.ConfusionMatrix.Select(c => (c.Expected, c.Predicted, c.Count)).Should().Equal(
            ("ham", "ham", 5), ("ham", "spam", 1), ("spam", "ham", 1), ("spam", "spam", 5));
        // Mock tokens are whitespace words: prompt "Classify as spam or ham: <input>" + 3 per message, answer 1 word.
        var expectedCost = SpamItems.Sum(i => i.Input.Split(' ').Length + 5 + 3) * 1e-6 + 12 * 2e-6;
        Metric(summary, "cost_usd_total").Value.Should().BeApproximately(expectedCost, 1e-12);
        Metric(summary, "latency_p95_s").Value.Should().BeGreaterThan(0);

        await host.WaitForPublishedAsync<EvaluationCompleted>(e => e.RunId == run.Id);
        var completed = host.Published<EvaluationCompleted>().Should().ContainSingle(e => e.RunId == run.Id).Subject;
        completed.Summaries.Should().BeEquivalentTo(run.Summaries);
        completed.Results.Should().Be(run.Results);
        var artifact = await host.Services.GetRequiredService<IArtifactStore>().ReadVerifiedAsync(completed.Results);
        var lines = System.Text.Encoding.UTF8.GetString(artifact).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        lines.Should().HaveCount(12);
        var first = JsonDocument.Parse(lines[0]).RootElement;
        first.GetProperty("input").GetString().Should().Be("win a prize now");
        first.GetProperty("output").GetString().Should().Be("spam");
        first.GetProperty("scores").GetProperty("label").GetDouble().Should().Be(1);
        (await host.ResultsAsync(run.Id)).Should().HaveCount(12);

        // The same run again is answered from the response cache: no request reaches the model.
        var calls = mock.State.Requests;
        var rerun = await host.WaitForRunAsync((await host.StartRunAsync(request)).Id);
        mock.State.Requests.Should().Be(calls);
        Metric(rerun.Summaries!.Single(), "cached_calls").Value.Should().Be(12);
        Metric(rerun.Summaries!.Single(), "label_accuracy").Value.Should().BeApproximately(10.0 / 12, 1e-9);
    }

    [Fact]
    public async Task Run_OnPostgreSql_CompletesAndRerunIsCached()
    {
        var database = AspireTune.TestSupport.TestInfrastructure.PostgresDatabase("evaluation");
        await using var cleanup = new EvaluationDbContext(new Microsoft.EntityFrameworkCore.DbContextOptionsBuilder<EvaluationDbContext>().UseNpgsql(database).Options);
        try
        {
            await RunTwice(database);
        }
        finally
        {
            await cleanup.Database.EnsureDeletedAsync();
        }
    }

    private static async Task RunTwice(string database)
    {
        await using var mock = await MockOpenAIServer.StartAsync(configure: Classifier);
        await using var host = EvaluationHost.Start(settings: new Dictionary<string, string?> { ["ConnectionStrings:evaluationdb"] = database });
        await host.AddEndpointAsync("clf", mock.BaseUrl, "clf-model");
        await host.AddPromptAsync("spam", ClassifierTemplate);
        var dataset = await host.UploadDatasetAsync("spam", SpamJsonl);
        var request = new { prompts = new[] { "spam" }, modelEndpoints = new[] { "clf" }, dataset = dataset.Sha256, scorers = new[] { "label" } };

        var run = await host.WaitForRunAsync((await host.StartRunAsync(request)).Id);
        var calls = mock.State.Requests;
        var rerun = await host.WaitForRunAsync((await host.StartRunAsync(request)).Id);

        run.Status.Should().Be(RunStatus.Completed);
        Metric(run.Summaries!.Single(), "label_accuracy").Value.Should().BeApproximately(10.0 / 12, 1e-9);
        rerun.Status.Should().Be(RunStatus.Completed);
        Metric(rerun.Summaries!.Single(), "cached_calls").Value.Should().Be(12);
        mock.State.Requests.Should().Be(calls);
        (await host.ResultsAsync(run.Id)).Should().HaveCount(12);
    }

    [Fact]
    public async Task Run_RepeatsOnInconsistentModel_ConsistencyIsAgreementAcrossRepeats()
    {
        await using var mock = await MockOpenAIServer.StartAsync(configure: o => o.Models["flaky-mind"] = new MockModelBehavior { Reply = "yes", AlternateReply = "no" });
        await using var host = EvaluationHost.Start();
        await host.AddEndpointAsync("flaky", mock.BaseUrl, "flaky-mind");
        await host.AddPromptAsync("q", "Answer: {{$input}}");
        var dataset = await host.UploadDatasetAsync("qs", EvaluationHost.Jsonl([new { input = "a", expected = "yes" }, new { input = "b", expected = "yes" }]));

        var run = await host.WaitForRunAsync((await host.StartRunAsync(new { prompts = new[] { "q" }, modelEndpoints = new[] { "flaky" }, dataset = dataset.Sha256, repeats = 3 })).Id);

        run.Status.Should().Be(RunStatus.Completed);
        run.CompletedCalls.Should().Be(6);
        var summary = run.Summaries!.Single();
        // Per item: yes, no, yes -> the majority answer holds 2 of 3 repeats.
        Metric(summary, "consistency").Value.Should().BeApproximately(2.0 / 3, 1e-9);
        Metric(summary, "exact").Value.Should().BeApproximately(2.0 / 3, 1e-9);
        mock.State.RequestsFor("flaky-mind", "Answer: a").Should().Be(3);
    }

    [Fact]
    public async Task Run_429WithRetryAfter_RetriedAfterTheAnnouncedDelayAndScored()
    {
        await using var mock = await MockOpenAIServer.StartAsync(configure: o =>
            o.Models["busy"] = new MockModelBehavior { FailFirst = 2, FailStatus = 429, RetryAfterSeconds = 1, Reply = "ok" });
        await using var host = EvaluationHost.Start();
        await host.AddEndpointAsync("busy", mock.BaseUrl, "busy");
        await host.AddPromptAsync("q", "Say ok: {{$input}}");
        var dataset = await host.UploadDatasetAsync("two", EvaluationHost.Jsonl([new { input = "1", expected = "ok" }, new { input = "2", expected = "ok" }]));

        var run = await host.WaitForRunAsync((await host.StartRunAsync(new { prompts = new[] { "q" }, modelEndpoints = new[] { "busy" }, dataset = dataset.Sha256 })).Id);

        run.Status.Should().Be(RunStatus.Completed);
        run.Summaries!.Single().Errors.Should().Be(0);
        Metric(run.Summaries!.Single(), "exact").Value.Should().Be(1);
        mock.State.Answered(429).Should().Be(4);
        foreach (var input in new[] { "1", "2" })
        {
            var arrivals = mock.State.ArrivalsFor("busy", "Say ok: " + input);
            arrivals.Should().HaveCount(3);
            // The back-off alone is 10 ms: gaps of a second come from honouring Retry-After: 1.
            for (var i = 1; i < arrivals.Count; i++)
                (arrivals[i] - arrivals[i - 1]).Should().BeGreaterThanOrEqualTo(TimeSpan.FromMilliseconds(950));
        }
    }

    [Fact]
    public async Task Run_EndpointWithRequestsPerMinute_CallsSpreadByTheLimit()
    {
        await using var mock = await MockOpenAIServer.StartAsync(configure: o => o.Fallback = "ok");
        await using var host = EvaluationHost.Start();
        await host.AddEndpointAsync("limited", mock.BaseUrl, "limited", maxConcurrency: 8, requestsPerMinute: 60);
        await host.AddPromptAsync("q", "{{$input}}");
        var dataset = await host.UploadDatasetAsync("three", EvaluationHost.Jsonl(new[] { "a", "b", "c" }.Select(i => new { input = i, expected = "ok" })));

        var run = await host.WaitForRunAsync((await host.StartRunAsync(new { prompts = new[] { "q" }, modelEndpoints = new[] { "limited" }, dataset = dataset.Sha256 })).Id);

        run.Status.Should().Be(RunStatus.Completed);
        var arrivals = new[] { "a", "b", "c" }.SelectMany(i => mock.State.ArrivalsFor("limited", i)).Order().ToList();
        arrivals.Should().HaveCount(3);
        // 60 per minute is one per second: despite 8 allowed in flight, the third call waits for a second refill.
        (arrivals[2] - arrivals[0]).Should().BeGreaterThanOrEqualTo(TimeSpan.FromMilliseconds(950));
    }

    [Fact]
    public async Task Run_FaultyEndpointsAndBadLine_CompletesWithClearPerItemErrors()
    {
        await using var mock = await MockOpenAIServer.StartAsync(configure: o =>
        {
            o.Fallback = "fine";
            o.Models["garbage"] = new MockModelBehavior { Garbage = true };
            o.Models["down"] = new MockModelBehavior { Status = 500 };
            o.Models["hang"] = new MockModelBehavior { Hang = true };
        });
        await using var host = EvaluationHost.Start(settings: new Dictionary<string, string?>
        {
            ["Evaluation:ModelHttp:AttemptTimeoutSeconds"] = "0.5",
            ["Evaluation:ModelHttp:MaxRetries"] = "1",
        });
        foreach (var id in new[] { "good", "garbage", "down", "hang" })
            await host.AddEndpointAsync(id, mock.BaseUrl, id);
        await host.AddPromptAsync("q", "Q: {{$input}}");
        var artifact = await host.Services.GetRequiredService<IArtifactStore>().PutAsync(
            new MemoryStream("{\"input\":\"one\",\"expected\":\"fine\"}\n{\"expected\":\"no input\"}\n{\"input\":\"two\",\"expected\":\"fine\"}\n"u8.ToArray()),
            "test", "faults.jsonl", "application/jsonl");

        var run = await host.WaitForRunAsync((await host.StartRunAsync(new
        {
            prompts = new[] { "q" },
            modelEndpoints = new[] { "good", "garbage", "down", "hang" },
            datasetArtifact = artifact,
        })).Id);

        run.Status.Should().Be(RunStatus.Completed);
        var byEndpoint = run.Summaries!.ToDictionary(s => s.ModelEndpoint);
        byEndpoint["good"].Items.Should().Be(2);
        byEndpoint["good"].Errors.Should().Be(1);
        Metric(byEndpoint["good"], "exact").Value.Should().Be(1);
        foreach (var faulty in new[] { "garbage", "down", "hang" })
            byEndpoint[faulty].Errors.Should().Be(3);
        var results = await host.ResultsAsync(run.Id);
        string Error(string endpoint, int item) => results.Single(r => r.GetProperty("modelEndpoint").GetString() == endpoint && r.GetProperty("item").GetInt32() == item).GetProperty("error").GetString()!;
        Error("good", 1).Should().Be("line 2: 'input' is missing or not a non-empty string");
        Error("garbage", 0).Should().Contain("not an OpenAI chat completion");
        Error("down", 0).Should().Contain("HTTP 500");
        Error("hang", 0).Should().Contain("did not answer in time");
        await host.WaitForPublishedAsync<EvaluationCompleted>(e => e.RunId == run.Id);
        host.Published<EvaluationCompleted>().Should().ContainSingle(e => e.RunId == run.Id);
        // One retry per call on 500: two requests for each of the two valid items.
        mock.State.RequestsFor("down").Should().Be(4);
    }

    [Fact]
    public async Task Run_EndpointFailingRepeatedly_CircuitOpensAndSparesTheEndpoint()
    {
        await using var mock = await MockOpenAIServer.StartAsync(configure: o => o.Models["broken"] = new MockModelBehavior { Status = 503, RetryAfterSeconds = 0 });
        await using var host = EvaluationHost.Start(settings: new Dictionary<string, string?>
        {
            ["Evaluation:ModelHttp:MaxRetries"] = "0",
            ["Evaluation:ModelHttp:CircuitMinimumThroughput"] = "4",
            ["Evaluation:ModelHttp:CircuitBreakSeconds"] = "60",
        });
        await host.AddEndpointAsync("broken", mock.BaseUrl, "broken", maxConcurrency: 1);
        await host.AddPromptAsync("q", "{{$input}}");
        var dataset = await host.UploadDatasetAsync("twenty", EvaluationHost.Jsonl(Enumerable.Range(0, 20).Select(i => new { input = $"item {i}", expected = "x" })));

        var run = await host.WaitForRunAsync((await host.StartRunAsync(new { prompts = new[] { "q" }, modelEndpoints = new[] { "broken" }, dataset = dataset.Sha256 })).Id);

        run.Status.Should().Be(RunStatus.Completed);
        run.Summaries!.Single().Errors.Should().Be(20);
        mock.State.RequestsFor("broken").Should().BeLessThan(20);
        var errors = (await host.ResultsAsync(run.Id)).Select(r => r.GetProperty("error").GetString()).ToList();
        errors.Should().Contain(e => e!.Contains("HTTP 503")).And.Contain(e => e!.Contains("circuit is open"));
    }

    [Fact]
    public async Task Run_JudgeAndNumericScorers_ScoresFromJudgeEndpoint()
    {
        await using var mock = await MockOpenAIServer.StartAsync(configure: o =>
        {
            o.Rules.Add(new MockRule { Pattern = @"Grade \(1-10\):$", Reply = "8\nMostly right." });
            o.Rules.Add(new MockRule { Pattern = @"^Rate: (\d+)", Reply = "I would say $1" });
        });
        await using var host = EvaluationHost.Start();
        await host.AddEndpointAsync("rater", mock.BaseUrl, "rater");
        await host.AddEndpointAsync("grader", mock.BaseUrl, "grader");
        await host.AddPromptAsync("rate", "Rate: {{$input}}");
        var dataset = await host.UploadDatasetAsync("ratings", EvaluationHost.Jsonl([new { input = "7", expected = "8" }, new { input = "3", expected = "3" }]));

        var run = await host.WaitForRunAsync((await host.StartRunAsync(new
        {
            prompts = new[] { "rate" },
            modelEndpoints = new[] { "rater" },
            dataset = dataset.Sha256,
            scorers = new[] { "numeric:0.5", "judge:grader", "regex:^I would say \\d+$" },
            judgeRubric = "The rating matches.",
        })).Id);

        run.Status.Should().Be(RunStatus.Completed);
        var summary = run.Summaries!.Single();
        Metric(summary, "numeric").Value.Should().Be(0.5);
        Metric(summary, "numeric_abs_error").Value.Should().Be(0.5);
        Metric(summary, "judge").Value.Should().Be(0.8);
        Metric(summary, "regex").Value.Should().Be(1);
        mock.State.RequestsFor("grader").Should().Be(2);
    }

    [Fact]
    public async Task Cancel_ExecutingRun_StopsAndPublishesEvaluationFailed()
    {
        await using var mock = await MockOpenAIServer.StartAsync(configure: o => o.LatencyMs = 300);
        await using var host = EvaluationHost.Start();
        await host.AddEndpointAsync("slow", mock.BaseUrl, "slow", maxConcurrency: 1);
        await host.AddPromptAsync("q", "{{$input}}");
        var dataset = await host.UploadDatasetAsync("many", EvaluationHost.Jsonl(Enumerable.Range(0, 40).Select(i => new { input = $"item {i}", expected = "x" })));
        var run = await host.StartRunAsync(new { prompts = new[] { "q" }, modelEndpoints = new[] { "slow" }, dataset = dataset.Sha256 });
        while ((await host.GetRunAsync(run.Id)).CompletedCalls < 1)
            await Task.Delay(50);

        var cancel = await host.Client.PostAsync($"/api/evaluation/runs/{run.Id}/cancel", null);
        cancel.StatusCode.Should().Be(System.Net.HttpStatusCode.Accepted);
        var finished = await host.WaitForRunAsync(run.Id);

        finished.Status.Should().Be(RunStatus.Cancelled);
        finished.CompletedCalls.Should().BeLessThan(40);
        await host.WaitForPublishedAsync<EvaluationFailed>(e => e.RunId == run.Id);
        host.Published<EvaluationFailed>().Should().ContainSingle(e => e.RunId == run.Id).Which.Reason.Should().Contain("cancelled by anonymous");
        (await host.Client.PostAsync($"/api/evaluation/runs/{run.Id}/cancel", null)).StatusCode.Should().Be(System.Net.HttpStatusCode.Conflict);
    }
}

using System.Net.Http.Json;
using System.Text.Json;
using AspireTune.Cli.Infrastructure;
using AspireTune.Comparison.Apis;
using AspireTune.Contracts.Comparison;
using AspireTune.Contracts.Retrieval;
using AspireTune.Contracts.Evaluation;
using AspireTune.Evaluation.Apis;
using AspireTune.Evaluation.Data;
using AspireTune.FineTuning.Apis;
using AspireTune.Retrieval.Apis;
using AspireTune.TestSupport;

namespace AspireTune.Cli.Tests;

/// <summary>Each command group against the embedded host (reached with --url), its --json output parsed as the API's types.</summary>
public sealed class CommandGroupTests(EmbeddedHostFixture host) : IClassFixture<EmbeddedHostFixture>
{
    private string[] Remote(params string[] args) => [.. args, "--url", host.Url];

    [Fact]
    public async Task Models_ListJson_ParsesAndHoldsTheBuiltInModel()
    {
        var result = await Cli.RunAsync(Remote("models", "list", "--json"));

        result.Exit.Should().Be(ExitCodes.Ok, result.ToString());
        result.Json<ListResponse<ModelResponse>>().Data.Should().Contain(m => m.Id == "aspiretune-tiny" && m.Source == "built_in");
    }

    [Fact]
    public async Task Models_DeleteBuiltIn_ExitsOneWithTheServiceReason()
    {
        var result = await Cli.RunAsync(Remote("models", "delete", "aspiretune-tiny"));

        result.Exit.Should().Be(ExitCodes.Error);
        result.Stderr.Should().Contain("409").And.Contain("built-in");
    }

    [Fact]
    public async Task Models_Export_WritesAZipOfTheModel()
    {
        var target = Path.Combine(TestInfrastructure.TempDataFolder("export"), "tiny.zip");

        var result = await Cli.RunAsync(Remote("models", "export", "aspiretune-tiny", "-o", target, "--json"));

        result.Exit.Should().Be(ExitCodes.Ok, result.ToString());
        result.Json<Commands.ModelsCommand.ExportedFile>().Bytes.Should().Be(new FileInfo(target).Length);
        using var zip = System.IO.Compression.ZipFile.OpenRead(target);
        zip.Entries.Should().Contain(e => e.Name == "config.json");
    }

    [Fact]
    public async Task Retrieval_CreateIngestSearch_FindsTheIngestedText()
    {
        var folder = TestInfrastructure.TempDataFolder("ingest");
        File.WriteAllText(Path.Combine(folder, "whales.md"), "# Whales\nThe blue whale is the largest animal that ever lived.");
        File.WriteAllText(Path.Combine(folder, "bread.txt"), "Sourdough bread rises with wild yeast and lactic bacteria.");

        var ingest = await Cli.RunAsync(Remote("retrieval", "ingest", "cli-docs", Path.Combine(folder, "whales.md"), Path.Combine(folder, "bread.txt"), "--create", "--json"));
        ingest.Exit.Should().Be(ExitCodes.Ok, ingest.ToString());
        ingest.Json<IngestResult>().Documents.Should().Be(2);

        var search = await Cli.RunAsync(Remote("retrieval", "search", "cli-docs", "largest whale", "-k", "1", "--json"));
        search.Exit.Should().Be(ExitCodes.Ok, search.ToString());
        search.Json<NeighborsResponse>().Neighbors.Should().ContainSingle().Which.Text.Should().Contain("blue whale");

        var list = await Cli.RunAsync(Remote("retrieval", "collections", "list", "--json"));
        list.Json<List<CollectionInfo>>().Should().Contain(c => c.Name == "cli-docs" && c.Documents == 2);
        (await Cli.RunAsync(Remote("retrieval", "collections", "show", "cli-docs"))).Stdout.Should().Contain("cli-docs");
        (await Cli.RunAsync(Remote("retrieval", "collections", "delete", "cli-docs"))).Exit.Should().Be(ExitCodes.Ok);
        (await Cli.RunAsync(Remote("retrieval", "collections", "show", "cli-docs"))).Exit.Should().Be(ExitCodes.Error);
    }

    [Fact]
    public async Task Evaluation_RunListShowResults_JsonParsesWithScores()
    {
        var dataset = await PrepareEvaluationAsync("cli-qa", "Question: {{$input}}", """
            {"input": "What is the capital of France?", "expected": "Paris"}
            {"input": "What is 2 + 2?", "expected": "4"}
            """);

        var run = await Cli.RunAsync(Remote("evaluation", "run", "--dataset", dataset, "--prompt", "cli-qa", "--model", "large", "--scorer", "contains", "--json"));
        run.Exit.Should().Be(ExitCodes.Ok, run.ToString());
        var finished = run.Json<RunResponse>();
        finished.Status.Should().Be(RunStatus.Completed);
        finished.Summaries.Should().ContainSingle().Which.Metrics.Should().Contain(m => m.Name == "contains" && m.Value == 1);

        var list = await Cli.RunAsync(Remote("evaluation", "list", "--json"));
        list.Json<List<RunResponse>>().Should().Contain(r => r.Id == finished.Id);
        var show = await Cli.RunAsync(Remote("evaluation", "show", finished.Id.ToString()));
        show.Stdout.Should().Contain("cli-qa@1", show.ToString()).And.Contain("contains");

        var results = await Cli.RunAsync(Remote("evaluation", "results", finished.Id.ToString(), "--json"));
        var lines = results.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonSerializer.Deserialize<EvaluationItemResult>(l, CliIo.Json)!).ToList();
        lines.Should().HaveCount(2).And.OnlyContain(r => r.Scores!["contains"] == 1);
    }

    [Fact]
    public async Task FineTuning_UploadCreateFollowShowEvents_JobSucceeds()
    {
        var training = Path.Combine(TestInfrastructure.TempDataFolder("ft"), "train.jsonl");
        File.WriteAllLines(training, Enumerable.Range(0, 20).Select(i => JsonSerializer.Serialize(new
        {
            messages = new object[]
            {
                new { role = "user", content = $"Review {i}: the soup was {(i % 2 == 0 ? "lovely" : "awful")}" },
                new { role = "assistant", content = i % 2 == 0 ? "positive" : "negative" },
            },
        })));

        var upload = await Cli.RunAsync(Remote("fine-tuning", "files", "upload", training, "--json"));
        upload.Exit.Should().Be(ExitCodes.Ok, upload.ToString());
        var file = upload.Json<FileResponse>();
        file.Examples.Should().Be(20);

        var create = await Cli.RunAsync(Remote("fine-tuning", "jobs", "create", "--model", "aspiretune-tiny", "--training-file", file.Id,
            "-p", "n_epochs=1", "-p", "batch_size=4", "--follow", "--json"));
        create.Exit.Should().Be(ExitCodes.Ok, create.ToString());
        var job = create.Json<JobResponse>();
        job.Status.Should().Be("succeeded");
        job.FineTunedModel.Should().NotBeNullOrEmpty();

        (await Cli.RunAsync(Remote("fine-tuning", "jobs", "show", job.Id, "--json"))).Json<JobResponse>().Id.Should().Be(job.Id);
        (await Cli.RunAsync(Remote("fine-tuning", "jobs", "list", "--json"))).Json<ListResponse<JobResponse>>().Data.Should().Contain(j => j.Id == job.Id);
        var events = (await Cli.RunAsync(Remote("fine-tuning", "jobs", "events", job.Id, "--json"))).Json<ListResponse<JobEventResponse>>();
        events.Data.Should().NotBeEmpty();
        var cancel = await Cli.RunAsync(Remote("fine-tuning", "jobs", "cancel", job.Id));
        cancel.Exit.Should().Be(ExitCodes.Error, "a finished job cannot be cancelled");
        (await Cli.RunAsync(Remote("models", "list", "--json"))).Json<ListResponse<ModelResponse>>().Data.Should().Contain(m => m.Id == job.FineTunedModel);
    }

    [Fact]
    public async Task Experiments_StartedThenCancelled_ListShowCancelAndReportAnswer()
    {
        var response = await host.Http.PostAsJsonAsync("api/experiments", new CreateExperimentRequest
        {
            Name = "cli-cancel",
            Dataset = string.Join("\n", Enumerable.Range(0, 20).Select(i => JsonSerializer.Serialize(new { input = $"message {i}", expected = i % 2 == 0 ? "spam" : "ham" }))),
            Candidates = ["knn"],
        }, CliIo.Json, TestContext.Current.CancellationToken);
        var id = (await response.Content.ReadFromJsonAsync<ExperimentAccepted>(CliIo.Json, TestContext.Current.CancellationToken))!.Id;

        var cancel = await Cli.RunAsync(Remote("experiment", "cancel", id.ToString(), "--json"));
        // Either it was still running (now cancelled) or it had already finished (409, exit 1).
        if (cancel.Exit == ExitCodes.Ok)
            cancel.Json<ExperimentSummary>().Status.Should().Be("cancelled");
        else
            cancel.Stderr.Should().Contain("409");

        (await Cli.RunAsync(Remote("experiment", "list", "--json"))).Json<Page<ExperimentSummary>>().Items.Should().Contain(e => e.Id == id);
        var show = await Cli.RunAsync(Remote("experiment", "show", id.ToString(), "--json"));
        show.Json<ExperimentView>().Name.Should().Be("cli-cancel");
        (await Cli.RunAsync(Remote("experiment", "show", Guid.NewGuid().ToString()))).Exit.Should().Be(ExitCodes.Error);
    }

    /// <summary>The mock's <c>large</c> model as an endpoint, a prompt, and the dataset written to a file; returns its path.</summary>
    private async Task<string> PrepareEvaluationAsync(string prompt, string template, string jsonl)
    {
        await host.RegisterModelAsync("large");
        (await host.Http.PostAsJsonAsync("api/evaluation/prompts", new PromptVersionRequest { Name = prompt, Template = template }, CliIo.Json, TestContext.Current.CancellationToken)).EnsureSuccessStatusCode();
        var dataset = Path.Combine(TestInfrastructure.TempDataFolder(prompt), "dataset.jsonl");
        File.WriteAllText(dataset, jsonl);
        return dataset;
    }

    [Fact]
    public async Task Evaluation_RunConstrainedToLabels_TheModelReceivesTheLabelsAndAnswersOne()
    {
        var dataset = await PrepareEvaluationAsync("cli-city", "City: {{$input}}", """
            {"input": "What is the capital of France?", "expected": "Paris"}
            {"input": "Where is the Colosseum?", "expected": "Rome"}
            """);

        var run = await Cli.RunAsync(Remote("evaluation", "run", "--dataset", dataset, "--prompt", "cli-city", "--model", "large", "--scorer", "label", "--constrain-to-labels", "--json"));

        run.Exit.Should().Be(ExitCodes.Ok, run.ToString());
        var finished = run.Json<RunResponse>();
        finished.Spec!.ConstrainToLabels.Should().BeTrue();
        host.Model.State.GuidedChoiceFor("large", "City: What is the capital of France?").Should().Equal("Paris", "Rome");
        var results = await Cli.RunAsync(Remote("evaluation", "results", finished.Id.ToString(), "--json"));
        results.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonSerializer.Deserialize<EvaluationItemResult>(l, CliIo.Json)!.Output)
            .Should().OnlyContain(o => o == "Paris" || o == "Rome").And.Contain("Paris", "the free answer 'Paris is the capital of France.' becomes the label");
        // Without the label scorer the constraint cannot apply: the service's 400 names the field, nothing runs.
        var refused = await Cli.RunAsync(Remote("evaluation", "run", "--dataset", dataset, "--prompt", "cli-city", "--model", "large", "--scorer", "exact", "--constrain-to-labels"));
        refused.Exit.Should().Be(ExitCodes.Usage, "the service answered 400");
        refused.Stderr.Should().Contain("constrainToLabels");
    }

    [Theory]
    [InlineData("classification", "knn")]
    [InlineData("generation", "prompted")]
    public async Task ExperimentShow_OfEachTask_PrintsTheTask(string task, string candidate)
    {
        var ct = TestContext.Current.CancellationToken;
        var name = "cli-show-" + task;
        var response = await host.Http.PostAsJsonAsync("api/experiments", new CreateExperimentRequest
        {
            Name = name,
            Task = task,
            Dataset = string.Join("\n", Enumerable.Range(0, 20).Select(i => task == "generation"
                ? JsonSerializer.Serialize(new { input = $"order {i} from Oslo", expected = new { city = "Oslo", number = i } })
                : JsonSerializer.Serialize(new { input = $"message {i}", expected = i % 2 == 0 ? "spam" : "ham" }))),
            Candidates = [candidate],
        }, CliIo.Json, ct);
        response.EnsureSuccessStatusCode();
        var id = (await response.Content.ReadFromJsonAsync<ExperimentAccepted>(CliIo.Json, ct))!.Id;
        await host.Http.PostAsync($"api/experiments/{id}/cancel", null, ct); // only its view is needed: 202, or 409 if it already ended

        var show = await Cli.RunAsync(Remote("experiment", "show", id.ToString()));

        show.Exit.Should().Be(ExitCodes.Ok, show.ToString());
        show.Stdout.Should().Contain($"Experiment {name} ({id}): {task}, ");
    }

    [Fact]
    public async Task Experiment_RunKnnOnly_PrintsTheReportAndReportDownloadsIt()
    {
        var dataset = Path.Combine(TestInfrastructure.TempDataFolder("experiment"), "mail.jsonl");
        string[] spam = ["win free money now", "claim your free prize offer", "cheap pills order now", "click to unsubscribe from offers"];
        string[] ham = ["meeting moved to monday", "lunch with the team tomorrow", "draft report attached for review", "see you at the station"];
        File.WriteAllLines(dataset, Enumerable.Range(0, 40).Select(i => JsonSerializer.Serialize(new
        {
            input = $"{(i % 2 == 0 ? spam[i / 2 % 4] : ham[i / 2 % 4])} number {i}",
            expected = i % 2 == 0 ? "spam" : "ham",
        })));

        var run = await Cli.RunAsync(Remote("experiment", "run", "--dataset", dataset, "--candidates", "knn", "--json"));

        run.Exit.Should().Be(ExitCodes.Ok, run.ToString());
        var report = run.Json<ExperimentReport>();
        report.Candidates.Should().ContainSingle(c => c.Kind == CandidateKind.Knn);
        run.Stderr.Should().Contain("comparison");
        var listed = (await Cli.RunAsync(Remote("experiment", "list", "--json"))).Json<Page<ExperimentSummary>>().Items.First(e => e.Name == "mail");
        var folder = TestInfrastructure.TempDataFolder("report");
        var again = await Cli.RunAsync(Remote("experiment", "report", listed.Id.ToString(), "-o", folder));
        again.Exit.Should().Be(ExitCodes.Ok, again.ToString());
        again.Stdout.Should().Contain("Decision:");
        File.ReadAllText(Path.Combine(folder, $"{listed.Id}.html")).Should().Contain("<html");
    }

    [Theory]
    [InlineData("models lisst")]
    [InlineData("evaluation show not-a-guid")]
    [InlineData("models list --url ftp://example")]
    [InlineData("eval /nonexistent/promptfooconfig.yaml")]
    public async Task Usage_BadArguments_ExitTwo(string line)
    {
        var result = await Cli.RunAsync(line.Split(' '));

        result.Exit.Should().Be(ExitCodes.Usage, result.ToString());
        result.Stdout.Should().BeEmpty();
    }

    [Fact]
    public async Task Models_ListInProcess_StartsTheEmbeddedHost()
    {
        var result = await Cli.RunAsync("models", "list", "--json", "--data", TestInfrastructure.TempDataFolder("cli-inprocess"));

        result.Exit.Should().Be(ExitCodes.Ok, result.ToString());
        result.Json<ListResponse<ModelResponse>>().Data.Should().Contain(m => m.Id == "aspiretune-tiny");
    }
}

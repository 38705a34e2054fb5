// Over 400 lines on purpose: the whole hosted workflow driven through the unchanged official SDK (files, supervised and
// DPO jobs, events, checkpoints, chat) with the fixtures they share; split, each test class would repeat the setup.
using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using AspireTune.ServiceDefaults.Security;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Files;
using OpenAI.FineTuning;

namespace AspireTune.FineTuning.Tests;

/// <summary>
/// The hosted fine-tuning workflow driven by the official OpenAI .NET SDK, unchanged, against <c>/v1</c>: upload a
/// training and a validation file, create a supervised job, poll it to succeeded, list events and checkpoints,
/// read the results file, chat with the <c>ft:</c> model. Each raw response is also checked for every field the
/// OpenAI API reference marks required, since the SDK leaves a missing one at its default without complaint.
/// </summary>
[Collection(TrainingCollection.Name)]
public sealed class OpenAiFineTuningSdkTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static readonly string[] JobFields = ["id", "object", "created_at", "error", "fine_tuned_model", "finished_at", "hyperparameters", "model",
        "organization_id", "result_files", "seed", "status", "trained_tokens", "training_file", "validation_file", "method", "estimated_finish", "metadata", "integrations"];
    private static readonly string[] FileFields = ["id", "object", "bytes", "created_at", "filename", "purpose", "status"];
    private static readonly string[] EventFields = ["id", "object", "created_at", "level", "message", "type"];
    private static readonly string[] CheckpointFields = ["id", "object", "created_at", "fine_tuned_model_checkpoint", "fine_tuning_job_id", "metrics", "step_number"];

    internal static OpenAIClient Client(HttpClient http, string key = "not-needed-on-loopback") => new(new ApiKeyCredential(key), new OpenAIClientOptions
    {
        Endpoint = new Uri(http.BaseAddress!, "v1"),
        Transport = new HttpClientPipelineTransport(http),
    });

    [Fact]
    public async Task HostedWorkflow_OfficialSdk_TrainsListsAndChatsWithTheFineTunedModel()
    {
        await using var factory = new FineTuningFactory();
        var http = factory.CreateClient();
        var client = Client(http);
        var files = client.GetOpenAIFileClient();
        var fineTuning = client.GetFineTuningClient();

        OpenAIFile training = await files.UploadFileAsync(BinaryData.FromBytes(TestData.Jsonl(TestData.ChatLines(40))), "train.jsonl", FileUploadPurpose.FineTune);
        OpenAIFile validation = await files.UploadFileAsync(BinaryData.FromBytes(TestData.Jsonl(TestData.ChatLines(10, offset: 100))), "valid.jsonl", FileUploadPurpose.FineTune);
        var options = new FineTuningOptions
        {
            ValidationFile = validation.Id,
            Suffix = "sdk",
            Seed = 7,
            TrainingMethod = FineTuningTrainingMethod.CreateSupervised(
                HyperparameterBatchSize.CreateSize(4), HyperparameterEpochCount.CreateEpochCount(2), HyperparameterLearningRate.CreateMultiplier(3)),
        };
        var job = await fineTuning.FineTuneAsync("aspiretune-tiny", training.Id, waitUntilCompleted: false, options, Ct);
        var created = job.Status;
        job = await RunToEndAsync(fineTuning, job);
        var events = await job.GetEventsAsync(new GetEventsOptions { PageSize = 5 }, Ct).ToListAsync(Ct);
        var checkpoints = await job.GetCheckpointsAsync(new GetCheckpointsOptions(), Ct).ToListAsync(Ct);
        var listed = await fineTuning.GetJobsAsync(new FineTuningJobCollectionOptions { PageSize = 10 }, Ct).ToListAsync(Ct);
        var raw = await JsonAsync(http, $"/v1/fine_tuning/jobs/{job.JobId}");
        var model = raw.GetProperty("fine_tuned_model").GetString()!;
        var results = await files.DownloadFileAsync(job.ResultFileIds.Single(), Ct);
        ChatCompletion chat = await client.GetChatClient(model).CompleteChatAsync(
            [new SystemChatMessage("Classify the sentiment."), new UserChatMessage("The soup was excellent")], new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 8 }, Ct);

        created.Should().Be(FineTuningStatus.ValidatingFiles);
        job.Status.Should().Be(FineTuningStatus.Succeeded, raw.ToString());
        job.BaseModel.Should().Be("aspiretune-tiny");
        job.TrainingFileId.Should().Be(training.Id);
        job.ValidationFileId.Should().Be(validation.Id);
        job.UserProvidedSuffix.Should().Be("sdk");
        job.Seed.Should().Be(7);
        var hyper = job.MethodHyperparameters.Should().BeOfType<HyperparametersForSupervised>().Which;
        hyper.BatchSize.Should().Be(4);
        hyper.EpochCount.Should().Be(2);
        hyper.LearningRateMultiplier.Should().BeApproximately(3, 1e-6f);
        // Every example once per epoch: its rendered prompt, its answer and the end-of-text token (the built-in vocabulary is bytes).
        var perEpoch = TestData.ChatLines(40).Select(l => AspireTune.FineTuning.Curation.JsonlDataset.Parse(System.Text.Encoding.UTF8.GetBytes(l)).Examples[0])
            .Sum(e => System.Text.Encoding.UTF8.GetByteCount(AspireTune.FineTuning.Serving.ChatTemplate.BuiltIn.RenderPrompt(e.Prompt)) + System.Text.Encoding.UTF8.GetByteCount(e.Answer) + 1);
        raw.GetProperty("trained_tokens").GetInt64().Should().Be(2L * perEpoch, "trained_tokens counts every token of every step exactly");
        job.Value.Should().Be(model, "the SDK exposes fine_tuned_model as the operation's Value");
        model.Should().StartWith("ft:aspiretune-tiny:");
        RequireFields(raw, JobFields);
        raw.GetProperty("method").GetProperty("type").GetString().Should().Be("supervised");
        raw.GetProperty("organization_id").GetString().Should().Be("org-aspiretune");

        var allEvents = await JsonAsync(http, $"/v1/fine_tuning/jobs/{job.JobId}/events?limit=1000");
        events.Select(e => e.Id).Should().Equal(allEvents.GetProperty("data").EnumerateArray().Select(e => e.GetProperty("id").GetString()),
            "the SDK follows has_more and after through pages of 5 without skipping or repeating an event");
        events.Should().OnlyContain(e => e.Kind == FineTuningJobEventKind.Message || e.Kind == FineTuningJobEventKind.Metrics);
        allEvents.GetProperty("data")[0].GetProperty("message").GetString().Should().StartWith("Training finished", "the newest event comes first");
        allEvents.GetProperty("data").EnumerateArray().Should().Contain(e => e.GetProperty("type").GetString() == "metrics");
        foreach (var e in allEvents.GetProperty("data").EnumerateArray())
            RequireFields(e, EventFields);
        checkpoints.Should().NotBeEmpty();
        checkpoints.Select(c => c.StepNumber).Should().BeInDescendingOrder();
        checkpoints.Should().OnlyContain(c => c.JobId == job.JobId && c.Metrics.ValidLoss > 0);
        foreach (var c in (await JsonAsync(http, $"/v1/fine_tuning/jobs/{job.JobId}/checkpoints")).GetProperty("data").EnumerateArray())
            RequireFields(c, CheckpointFields);
        listed.Select(j => j.JobId).Should().Contain(job.JobId);
        RequireFields(await JsonAsync(http, $"/v1/files/{training.Id}"), FileFields);

        var csv = results.Value.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        csv[0].Should().Be("step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy");
        csv.Length.Should().BeGreaterThan(1);
        chat.Content.Should().ContainSingle();
        chat.Usage.InputTokenCount.Should().BePositive();
    }

    [Fact]
    public async Task HostedDpoWorkflow_OfficialSdk_TrainsOnPreferencePairsListsAndChatsWithTheFineTunedModel()
    {
        await using var factory = new FineTuningFactory();
        var http = factory.CreateClient();
        var client = Client(http);
        var files = client.GetOpenAIFileClient();
        var fineTuning = client.GetFineTuningClient();

        OpenAIFile training = await files.UploadFileAsync(BinaryData.FromBytes(TestData.Jsonl(TestData.PreferenceLines(24))), "pairs.jsonl", FileUploadPurpose.FineTune);
        OpenAIFile validation = await files.UploadFileAsync(BinaryData.FromBytes(TestData.Jsonl(TestData.PreferenceLines(8, offset: 100))), "pairs-valid.jsonl", FileUploadPurpose.FineTune);
        var options = new FineTuningOptions
        {
            ValidationFile = validation.Id,
            Suffix = "dpo",
            TrainingMethod = FineTuningTrainingMethod.CreateDirectPreferenceOptimization(
                HyperparameterBatchSize.CreateSize(4), HyperparameterEpochCount.CreateEpochCount(2), HyperparameterLearningRate.CreateMultiplier(0.3), HyperparameterBetaFactor.CreateBeta(1)),
        };
        var job = await RunToEndAsync(fineTuning, await fineTuning.FineTuneAsync("aspiretune-tiny", training.Id, waitUntilCompleted: false, options, Ct));
        var events = await job.GetEventsAsync(new GetEventsOptions { PageSize = 5 }, Ct).ToListAsync(Ct);
        var checkpoints = await job.GetCheckpointsAsync(new GetCheckpointsOptions(), Ct).ToListAsync(Ct);
        var raw = await JsonAsync(http, $"/v1/fine_tuning/jobs/{job.JobId}");
        var model = raw.GetProperty("fine_tuned_model").GetString()!;
        ChatCompletion chat = await client.GetChatClient(model).CompleteChatAsync(
            [new SystemChatMessage("Classify the sentiment."), new UserChatMessage("The soup was excellent")], new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 8 }, Ct);

        job.Status.Should().Be(FineTuningStatus.Succeeded, raw.ToString());
        var hyper = job.MethodHyperparameters.Should().BeOfType<HyperparametersForDPO>().Which;
        hyper.BatchSize.Should().Be(4);
        hyper.EpochCount.Should().Be(2);
        hyper.LearningRateMultiplier.Should().BeApproximately(0.3f, 1e-6f);
        RequireFields(raw, JobFields);
        var method = raw.GetProperty("method");
        method.GetProperty("type").GetString().Should().Be("dpo");
        method.GetProperty("dpo").GetProperty("hyperparameters").GetProperty("beta").GetDouble().Should().Be(1);
        raw.GetProperty("hyperparameters").GetProperty("beta").GetDouble().Should().Be(1);
        model.Should().StartWith("ft:aspiretune-tiny:dpo:");
        // Each pair of every step run: its rendered prompt twice (once before each answer), both answers and two end-of-text
        // tokens. Early stopping may end the run before its 12 steps; the trainer's seeded order says which pairs those were.
        var pairTokens = TestData.PreferenceLines(24).Select(l => AspireTune.FineTuning.Curation.JsonlDataset.Parse(System.Text.Encoding.UTF8.GetBytes(l)).Examples[0])
            .Select(e => 2 * System.Text.Encoding.UTF8.GetByteCount(AspireTune.FineTuning.Serving.ChatTemplate.BuiltIn.RenderPrompt(e.Prompt))
                + System.Text.Encoding.UTF8.GetByteCount(e.Answer) + System.Text.Encoding.UTF8.GetByteCount(e.NonPreferred!) + 2).ToList();
        var stepsRun = checkpoints.Max(c => c.StepNumber);
        var expectedTokens = Enumerable.Range(0, stepsRun).Sum(s => AspireTune.Engine.Training.StepSchedule.Shuffle(24, raw.GetProperty("seed").GetInt64(), s / 6)
            .Skip(s % 6 * 4).Take(4).Sum(i => (long)pairTokens[i]));
        raw.GetProperty("trained_tokens").GetInt64().Should().Be(expectedTokens, "trained_tokens counts every token of the {0} steps run exactly", stepsRun);

        var allEvents = await JsonAsync(http, $"/v1/fine_tuning/jobs/{job.JobId}/events?limit=1000");
        events.Select(e => e.Id).Should().Equal(allEvents.GetProperty("data").EnumerateArray().Select(e => e.GetProperty("id").GetString()));
        var metrics = allEvents.GetProperty("data").EnumerateArray().Where(e => e.GetProperty("type").GetString() == "metrics").ToList();
        metrics.Should().NotBeEmpty();
        metrics.Should().OnlyContain(e => e.GetProperty("data").GetProperty("valid_reward_accuracy").GetDouble() >= 0);
        allEvents.GetProperty("data").EnumerateArray().Should().Contain(e => e.GetProperty("message").GetString()!.StartsWith("Job created: dpo training"));
        foreach (var e in allEvents.GetProperty("data").EnumerateArray())
            RequireFields(e, EventFields);
        checkpoints.Should().NotBeEmpty();
        checkpoints.Should().OnlyContain(c => c.JobId == job.JobId && c.Metrics.ValidLoss > 0);
        foreach (var c in (await JsonAsync(http, $"/v1/fine_tuning/jobs/{job.JobId}/checkpoints")).GetProperty("data").EnumerateArray())
            RequireFields(c, CheckpointFields);
        chat.Content.Should().ContainSingle();
        chat.Usage.InputTokenCount.Should().BePositive();
    }

    [Fact]
    public async Task CreateDpoJob_FilesOfTheOtherFormatOrBetaOnSupervised_AnswerTheOpenAiErrorNamingTheParameter()
    {
        await using var factory = new FineTuningFactory(new Dictionary<string, string?> { ["FineTuning:WorkerEnabled"] = "false" });
        var http = factory.CreateClient();
        var files = Client(http).GetOpenAIFileClient();
        var chatFile = (await files.UploadFileAsync(BinaryData.FromBytes(TestData.Jsonl(TestData.ChatLines(12))), "t.jsonl", FileUploadPurpose.FineTune)).Value;
        var pairFile = (await files.UploadFileAsync(BinaryData.FromBytes(TestData.Jsonl(TestData.PreferenceLines(12))), "p.jsonl", FileUploadPurpose.FineTune)).Value;
        var badPairs = await UploadAsync(http, TestData.Jsonl([.. TestData.PreferenceLines(2), """{"input":{"messages":[{"role":"user","content":"x"}]},"preferred_output":[{"role":"assistant","content":"a"}]}"""]), "fine-tune");

        async Task<JsonElement> Create(object body)
        {
            var response = await http.PostAsJsonAsync("/v1/fine_tuning/jobs", body, Ct);
            response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
            return (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error");
        }

        var dpoOnChat = await Create(new { model = "aspiretune-tiny", training_file = chatFile.Id, method = new { type = "dpo" } });
        var supervisedOnPairs = await Create(new { model = "aspiretune-tiny", training_file = pairFile.Id });
        var betaOnSupervised = await Create(new { model = "aspiretune-tiny", training_file = chatFile.Id, method = new { type = "supervised", supervised = new { hyperparameters = new { beta = 0.1 } } } });
        var badBeta = await Create(new { model = "aspiretune-tiny", training_file = pairFile.Id, method = new { type = "dpo", dpo = new { hyperparameters = new { beta = -1 } } } });
        var accepted = await http.PostAsJsonAsync("/v1/fine_tuning/jobs", new { model = "aspiretune-tiny", training_file = pairFile.Id, method = new { type = "dpo", dpo = new { hyperparameters = new { beta = "auto" } } } }, Ct);

        dpoOnChat.GetProperty("param").GetString().Should().Be("training_file");
        dpoOnChat.GetProperty("message").GetString().Should().Contain("preference pairs");
        supervisedOnPairs.GetProperty("param").GetString().Should().Be("training_file");
        betaOnSupervised.GetProperty("param").GetString().Should().Be("method.supervised.hyperparameters.beta");
        badBeta.GetProperty("param").GetString().Should().Be("method.dpo.hyperparameters.beta");
        badPairs.Status.Should().Be(HttpStatusCode.BadRequest);
        badPairs.Error.GetProperty("message").GetString().Should().Contain("line 3").And.Contain("non_preferred_output");
        accepted.StatusCode.Should().Be(HttpStatusCode.OK);
        var job = await accepted.Content.ReadFromJsonAsync<JsonElement>(Ct);
        job.GetProperty("method").GetProperty("type").GetString().Should().Be("dpo");
        job.GetProperty("method").GetProperty("dpo").GetProperty("hyperparameters").GetProperty("beta").GetString().Should().Be("auto", "auto until the files are validated");
        var id = job.GetProperty("id").GetString()!;
        var until = DateTime.UtcNow.AddSeconds(30);
        JsonElement queued;
        do
            queued = await JsonAsync(http, $"/v1/fine_tuning/jobs/{id}");
        while (queued.GetProperty("status").GetString() == "validating_files" && DateTime.UtcNow < until);
        var sdkJob = await Client(http).GetFineTuningClient().GetJobAsync(id, Ct);
        queued.GetProperty("method").GetProperty("dpo").GetProperty("hyperparameters").GetProperty("beta").GetDouble().Should().Be(0.1, "auto resolved when the files passed");
        sdkJob.MethodHyperparameters.Should().BeOfType<HyperparametersForDPO>();
    }

    [Fact]
    public async Task PauseAndResume_RunningJob_StopsKeepsItsCheckpointPublishesBothEventsAndFinishesFromIt()
    {
        await using var factory = new FineTuningFactory();
        var http = factory.CreateClient();
        await using var bus = await BusEvents.ListenAsync(factory.Services, Ct);
        var client = Client(http);
        var fineTuning = client.GetFineTuningClient();
        OpenAIFile training = await client.GetOpenAIFileClient().UploadFileAsync(BinaryData.FromBytes(TestData.Jsonl(TestData.ChatLines(40))), "train.jsonl", FileUploadPurpose.FineTune);
        var id = await StartPausableJobAsync(http, training.Id);
        var until = DateTime.UtcNow.AddMinutes(2);

        var paused = await http.PostAsync($"/v1/fine_tuning/jobs/{id}/pause", null, Ct);
        var pausedBody = await paused.Content.ReadFromJsonAsync<JsonElement>(Ct);
        while (!(await EventMessagesAsync(http, id)).Any(m => m.StartsWith("Training paused at step", StringComparison.Ordinal)) && DateTime.UtcNow < until)
            await Task.Delay(100, Ct);
        var stepAtPause = (await Api.GetJsonAsync(http, $"/api/fine-tuning/jobs/{id}")).GetProperty("step").GetInt32();
        await Task.Delay(2500, Ct); // more than two heartbeats and many steps' time: a paused job does not train
        var stillPaused = await fineTuning.GetJobAsync(id, Ct);
        var stepLater = (await Api.GetJsonAsync(http, $"/api/fine-tuning/jobs/{id}")).GetProperty("step").GetInt32();
        var pauseAgain = await http.PostAsync($"/v1/fine_tuning/jobs/{id}/pause", null, Ct);
        var pauseAgainOnApi = await http.PostAsync($"/api/fine-tuning/jobs/{id}/pause", null, Ct);
        var resumed = await http.PostAsync($"/api/fine-tuning/jobs/{id}/resume", null, Ct);
        var resumedBody = await resumed.Content.ReadFromJsonAsync<JsonElement>(Ct);
        var finished = await RunToEndAsync(fineTuning, await fineTuning.GetJobAsync(id, Ct));
        var messages = await EventMessagesAsync(http, id);
        var resumeFinished = await http.PostAsync($"/v1/fine_tuning/jobs/{id}/resume", null, Ct);
        var jobId = Guid.Parse(id["ftjob-".Length..]);
        var pausedEvent = await bus.WaitAsync<Contracts.FineTuning.TrainingPaused>(e => e.JobId == jobId, Ct);
        var resumedEvent = await bus.WaitAsync<Contracts.FineTuning.TrainingResumed>(e => e.JobId == jobId, Ct);

        paused.StatusCode.Should().Be(HttpStatusCode.OK, pausedBody.ToString());
        pausedBody.GetProperty("status").GetString().Should().Be("paused");
        stillPaused.Status.ToString().Should().Be("paused", "the SDK reads the status it does not list among its own");
        stepLater.Should().Be(stepAtPause);
        pauseAgain.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        pauseAgainOnApi.StatusCode.Should().Be(HttpStatusCode.Conflict, "the same jobs on /api, whose errors are ProblemDetails");
        resumed.StatusCode.Should().Be(HttpStatusCode.OK, "resumed on the other route: one store");
        resumedBody.GetProperty("status").GetString().Should().Be("queued");
        finished.Status.Should().Be(FineTuningStatus.Succeeded);
        messages.Should().Contain(m => System.Text.RegularExpressions.Regex.IsMatch(m, @"^Training resumed from step [1-9]\d* of 36"), "the second run starts from the last checkpoint, not from scratch");
        (await JsonAsync(http, $"/v1/fine_tuning/jobs/{id}/checkpoints")).GetProperty("data")[0].GetProperty("step_number").GetInt32().Should().Be(36, "36 examples (4 held out) in batches of 4, 4 epochs");
        resumeFinished.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await resumeFinished.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error").GetProperty("code").GetString().Should().Be("job_not_paused");
        pausedEvent.PausedFrom.Should().Be("running");
        pausedEvent.CheckpointId.Should().StartWith("ftckpt-");
        pausedEvent.CheckpointStep.Should().BeGreaterThanOrEqualTo(2).And.BeLessThanOrEqualTo(pausedEvent.Step);
        pausedEvent.RequestedBy.Should().BeNull("this host runs without authentication, on loopback");
        resumedEvent.Status.Should().Be("queued");
        resumedEvent.Step.Should().Be(stepAtPause);
        resumedEvent.CheckpointId.Should().StartWith("ftckpt-");
        messages.Should().Contain(m => m.StartsWith($"Training resumed from step {resumedEvent.CheckpointStep} of 36 ", StringComparison.Ordinal), "the event names the checkpoint the next run continued from");
        bus.Of<Contracts.FineTuning.TrainingPaused>().Where(e => e.JobId == jobId).Should().ContainSingle("the refused second pause published nothing");
        bus.Of<Contracts.FineTuning.TrainingResumed>().Where(e => e.JobId == jobId).Should().ContainSingle("the refused resume of a finished job published nothing");
    }

    /// <summary>A 36-step job (checkpoints every 2 steps) on 40 examples, once it saved its first checkpoint; returns its id.</summary>
    internal static async Task<string> StartPausableJobAsync(HttpClient http, string trainingFile)
    {
        var created = await http.PostAsJsonAsync("/v1/fine_tuning/jobs", new
        {
            model = "aspiretune-tiny", training_file = trainingFile,
            method = new { type = "supervised", supervised = new { hyperparameters = new { n_epochs = 4, batch_size = 4, checkpoint_interval = 2, early_stopping_patience = 0 } } },
        }, Ct);
        var id = (await created.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("id").GetString()!;
        var until = DateTime.UtcNow.AddMinutes(2);
        while ((await JsonAsync(http, $"/v1/fine_tuning/jobs/{id}/checkpoints")).GetProperty("data").GetArrayLength() == 0 && DateTime.UtcNow < until)
            await Task.Delay(100, Ct);
        return id;
    }

    private static async Task<List<string>> EventMessagesAsync(HttpClient http, string id) =>
        [.. (await JsonAsync(http, $"/v1/fine_tuning/jobs/{id}/events?limit=1000")).GetProperty("data").EnumerateArray().Select(e => e.GetProperty("message").GetString()!)];

    [Fact]
    public async Task Files_OfficialSdk_ListRetrieveDownloadAndDelete()
    {
        await using var factory = new FineTuningFactory(new Dictionary<string, string?> { ["FineTuning:WorkerEnabled"] = "false" });
        var http = factory.CreateClient();
        var files = Client(http).GetOpenAIFileClient();
        var content = TestData.Jsonl(TestData.ChatLines(12));

        OpenAIFile first = await files.UploadFileAsync(BinaryData.FromBytes(content), "a.jsonl", FileUploadPurpose.FineTune);
        OpenAIFile second = await files.UploadFileAsync(BinaryData.FromBytes(content), "b.jsonl", FileUploadPurpose.FineTune);
        OpenAIFileCollection listed = await files.GetFilesAsync(Ct);
        OpenAIFile got = await files.GetFileAsync(first.Id, Ct);
        BinaryData downloaded = await files.DownloadFileAsync(first.Id, Ct);
        FileDeletionResult deleted = await files.DeleteFileAsync(first.Id, Ct);
        var afterDelete = await http.GetAsync($"/v1/files/{first.Id}", Ct);
        var error = await afterDelete.Content.ReadFromJsonAsync<JsonElement>(Ct);

        first.Filename.Should().Be("a.jsonl");
        first.SizeInBytes.Should().Be(content.Length);
        first.Purpose.Should().Be(FilePurpose.FineTune);
        listed.Select(f => f.Id).Should().Contain([first.Id, second.Id]);
        got.Filename.Should().Be("a.jsonl");
        downloaded.ToArray().Should().Equal(content);
        deleted.Deleted.Should().BeTrue();
        deleted.FileId.Should().Be(first.Id);
        afterDelete.StatusCode.Should().Be(HttpStatusCode.NotFound);
        error.GetProperty("error").GetProperty("code").GetString().Should().Be("file_not_found");
    }

    [Fact]
    public async Task Upload_BadJsonlOrPurpose_AnswersTheOpenAiErrorNamingTheParameter()
    {
        await using var factory = new FineTuningFactory(new Dictionary<string, string?> { ["FineTuning:WorkerEnabled"] = "false" });
        var http = factory.CreateClient();

        var badLine = await UploadAsync(http, "{\"messages\": [}\n"u8.ToArray(), "fine-tune");
        var badPurpose = await UploadAsync(http, TestData.Jsonl(TestData.ChatLines(3)), "assistants");
        var noPurpose = await UploadAsync(http, TestData.Jsonl(TestData.ChatLines(3)), null);

        badLine.Status.Should().Be(HttpStatusCode.BadRequest);
        badLine.Error.GetProperty("param").GetString().Should().Be("file");
        badLine.Error.GetProperty("message").GetString().Should().Contain("line 1");
        badPurpose.Status.Should().Be(HttpStatusCode.BadRequest);
        badPurpose.Error.GetProperty("param").GetString().Should().Be("purpose");
        noPurpose.Error.GetProperty("param").GetString().Should().Be("purpose");
        (await Client(http).GetOpenAIFileClient().GetFilesAsync(Ct)).Value.Should().BeEmpty("nothing was stored");
    }

    [Fact]
    public async Task CreateJob_BadRequests_AnswerTheOpenAiErrorNamingTheParameter()
    {
        await using var factory = new FineTuningFactory(new Dictionary<string, string?> { ["FineTuning:WorkerEnabled"] = "false" });
        var http = factory.CreateClient();
        var file = (await Client(http).GetOpenAIFileClient().UploadFileAsync(BinaryData.FromBytes(TestData.Jsonl(TestData.ChatLines(12))), "t.jsonl", FileUploadPurpose.FineTune)).Value;

        async Task<JsonElement> Create(object body)
        {
            var response = await http.PostAsJsonAsync("/v1/fine_tuning/jobs", body, Ct);
            response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
            return (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error");
        }

        (await Create(new { model = "nope", training_file = file.Id })).GetProperty("param").GetString().Should().Be("model");
        (await Create(new { model = "aspiretune-tiny", training_file = "file-missing" })).GetProperty("param").GetString().Should().Be("training_file");
        (await Create(new { model = "aspiretune-tiny", training_file = file.Id, method = new { type = "supervised", supervised = new { hyperparameters = new { n_epochs = 0 } } } }))
            .GetProperty("param").GetString().Should().Be("method.supervised.hyperparameters.n_epochs");
        (await Create(new { model = "aspiretune-tiny", training_file = file.Id, hyperparameters = new { batch_size = true } }))
            .GetProperty("param").GetString().Should().Be("hyperparameters.batch_size");
        (await Create(new { model = "aspiretune-tiny", training_file = file.Id, method = new { type = "reinforcement" } }))
            .GetProperty("param").GetString().Should().Be("method.type");
        (await Create(new { model = "aspiretune-tiny", training_file = file.Id, seed = -1 })).GetProperty("param").GetString().Should().Be("seed");
        (await JsonAsync(http, "/v1/fine_tuning/jobs")).GetProperty("data").GetArrayLength().Should().Be(0, "no job was created");
    }

    [Fact]
    public async Task ListJobs_AfterAndLimit_PagesNewestFirstWithoutOverlap()
    {
        await using var factory = new FineTuningFactory(new Dictionary<string, string?> { ["FineTuning:WorkerEnabled"] = "false" });
        var http = factory.CreateClient();
        var client = Client(http);
        var file = (await client.GetOpenAIFileClient().UploadFileAsync(BinaryData.FromBytes(TestData.Jsonl(TestData.ChatLines(12))), "t.jsonl", FileUploadPurpose.FineTune)).Value;
        var ids = new List<string>();
        for (var i = 0; i < 5; i++)
            ids.Add((await client.GetFineTuningClient().FineTuneAsync("aspiretune-tiny", file.Id, false, new FineTuningOptions { Metadata = { ["batch"] = i < 3 ? "a" : "b" } }, Ct)).JobId);

        var first = await JsonAsync(http, "/v1/fine_tuning/jobs?limit=2");
        var second = await JsonAsync(http, $"/v1/fine_tuning/jobs?limit=2&after={first.GetProperty("last_id").GetString()}");
        var third = await JsonAsync(http, $"/v1/fine_tuning/jobs?limit=2&after={second.GetProperty("last_id").GetString()}");
        var filtered = await JsonAsync(http, "/v1/fine_tuning/jobs?metadata[batch]=b");
        var sdk = await client.GetFineTuningClient().GetJobsAsync(new FineTuningJobCollectionOptions { PageSize = 2 }, Ct).ToListAsync(Ct);

        static List<string> Ids(JsonElement page) => page.GetProperty("data").EnumerateArray().Select(j => j.GetProperty("id").GetString()!).ToList();
        Ids(first).Concat(Ids(second)).Concat(Ids(third)).Should().Equal(Enumerable.Reverse(ids));
        first.GetProperty("has_more").GetBoolean().Should().BeTrue();
        third.GetProperty("has_more").GetBoolean().Should().BeFalse();
        first.GetProperty("first_id").GetString().Should().Be(ids[^1]);
        Ids(filtered).Should().BeEquivalentTo(ids[3..]);
        sdk.Select(j => j.JobId).Should().Equal(Enumerable.Reverse(ids));
        sdk.Should().OnlyContain(j => j.Status == FineTuningStatus.ValidatingFiles || j.Status == FineTuningStatus.Queued, "no worker runs in this host");
    }

    [Fact]
    public async Task CancelJob_OfficialSdk_CancelsAQueuedJobAndRefusesAFinishedOne()
    {
        await using var factory = new FineTuningFactory(new Dictionary<string, string?> { ["FineTuning:WorkerEnabled"] = "false" });
        var http = factory.CreateClient();
        var client = Client(http);
        var file = (await client.GetOpenAIFileClient().UploadFileAsync(BinaryData.FromBytes(TestData.Jsonl(TestData.ChatLines(12))), "t.jsonl", FileUploadPurpose.FineTune)).Value;
        var job = await client.GetFineTuningClient().FineTuneAsync("aspiretune-tiny", file.Id, false, new FineTuningOptions(), Ct);

        await job.CancelAndUpdateAsync(Ct);
        var again = await http.PostAsync($"/v1/fine_tuning/jobs/{job.JobId}/cancel", null, Ct);
        var events = await JsonAsync(http, $"/v1/fine_tuning/jobs/{job.JobId}/events");
        var missing = await http.GetAsync("/v1/fine_tuning/jobs/ftjob-00000000000000000000000000000000", Ct);

        job.Status.Should().Be(FineTuningStatus.Cancelled);
        again.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        events.GetProperty("data")[0].GetProperty("message").GetString().Should().Contain("cancelled");
        missing.StatusCode.Should().Be(HttpStatusCode.NotFound);
        (await missing.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error").GetProperty("param").GetString().Should().Be("fine_tuning_job_id");
    }

    [Fact]
    public async Task V1_WithoutOrWithAWrongKey_Answers401WithWwwAuthenticateAndTheOpenAiError()
    {
        const string operatorKey = "sk-operator-test-key";
        const string readerKey = "sk-reader-test-key";
        await using var factory = new FineTuningFactory(new Dictionary<string, string?>
        {
            ["FineTuning:WorkerEnabled"] = "false",
            ["Authentication:ApiKeys:Accounts:0:Name"] = "operator",
            ["Authentication:ApiKeys:Accounts:0:KeyHash"] = ApiKeyAuthenticationHandler.Hash(operatorKey),
            ["Authentication:ApiKeys:Accounts:0:Roles:0"] = "operator",
            ["Authentication:ApiKeys:Accounts:1:Name"] = "reader",
            ["Authentication:ApiKeys:Accounts:1:KeyHash"] = ApiKeyAuthenticationHandler.Hash(readerKey),
            ["Authentication:ApiKeys:Accounts:1:Roles:0"] = "reader",
        });
        var http = factory.CreateClient();

        var none = await http.GetAsync("/v1/fine_tuning/jobs", Ct);
        var wrong = Client(http, "sk-wrong");
        var sdkFailure = await FluentActions.Awaiting(() => wrong.GetOpenAIFileClient().GetFilesAsync(Ct)).Should().ThrowAsync<ClientResultException>();
        using var readerUpload = new HttpRequestMessage(HttpMethod.Post, "/v1/files") { Content = Form(TestData.Jsonl(TestData.ChatLines(3)), "fine-tune") };
        readerUpload.Headers.Authorization = new AuthenticationHeaderValue("Bearer", readerKey);
        var forbidden = await http.SendAsync(readerUpload, Ct);
        OpenAIFile uploaded = await Client(http, operatorKey).GetOpenAIFileClient().UploadFileAsync(BinaryData.FromBytes(TestData.Jsonl(TestData.ChatLines(3))), "t.jsonl", FileUploadPurpose.FineTune);

        none.StatusCode.Should().Be(HttpStatusCode.Unauthorized);
        none.Headers.WwwAuthenticate.Should().ContainSingle(h => h.Scheme == "Bearer");
        var error = (await none.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error");
        error.GetProperty("code").GetString().Should().Be("invalid_api_key");
        error.GetProperty("type").GetString().Should().Be("invalid_request_error");
        sdkFailure.Which.Status.Should().Be(401);
        forbidden.StatusCode.Should().Be(HttpStatusCode.Forbidden);
        (await forbidden.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error").GetProperty("code").GetString().Should().Be("insufficient_permissions");
        uploaded.Id.Should().StartWith("file-");
    }

    /// <summary>Polls the job until it is no longer in progress (3 minutes at most), then retrieves it whole (UpdateStatus refreshes the status only).</summary>
    internal static async Task<FineTuningJob> RunToEndAsync(FineTuningClient fineTuning, FineTuningJob job)
    {
        var until = DateTime.UtcNow.AddMinutes(3);
        while (job.Status.InProgress && DateTime.UtcNow < until)
        {
            await Task.Delay(250, Ct);
            await job.UpdateStatusAsync(Ct);
        }
        return await fineTuning.GetJobAsync(job.JobId, Ct);
    }

    private static MultipartFormDataContent Form(byte[] content, string? purpose)
    {
        var form = new MultipartFormDataContent();
        var file = new ByteArrayContent(content);
        file.Headers.ContentType = new MediaTypeHeaderValue("application/jsonl");
        form.Add(file, "file", "upload.jsonl");
        if (purpose is not null)
            form.Add(new StringContent(purpose), "purpose");
        return form;
    }

    private static async Task<(HttpStatusCode Status, JsonElement Error)> UploadAsync(HttpClient http, byte[] content, string? purpose)
    {
        using var form = Form(content, purpose);
        var response = await http.PostAsync("/v1/files", form, Ct);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(Ct);
        return (response.StatusCode, body.GetProperty("error"));
    }

    internal static async Task<JsonElement> JsonAsync(HttpClient http, string path)
    {
        var response = await http.GetAsync(path, Ct);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(Ct);
        response.IsSuccessStatusCode.Should().BeTrue($"{path}: {body}");
        return body;
    }

    private static void RequireFields(JsonElement element, IEnumerable<string> fields)
    {
        foreach (var field in fields)
            element.TryGetProperty(field, out _).Should().BeTrue($"'{field}' is a required field of {element.GetProperty("object")}: {element}");
    }
}

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

    private static OpenAIClient Client(HttpClient http, string key = "not-needed-on-loopback") => new(new ApiKeyCredential(key), new OpenAIClientOptions
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
        var until = DateTime.UtcNow.AddMinutes(3);
        while (job.Status.InProgress && DateTime.UtcNow < until)
        {
            await Task.Delay(250, Ct);
            await job.UpdateStatusAsync(Ct);
        }
        // UpdateStatus refreshes the status only: retrieve the finished job whole.
        job = await fineTuning.GetJobAsync(job.JobId, Ct);
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
            .Sum(e => System.Text.Encoding.UTF8.GetByteCount(AspireTune.FineTuning.Serving.ChatTemplate.RenderPrompt(e.Prompt)) + System.Text.Encoding.UTF8.GetByteCount(e.Answer) + 1);
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

    private static async Task<JsonElement> JsonAsync(HttpClient http, string path)
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

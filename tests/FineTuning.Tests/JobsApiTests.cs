using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace AspireTune.FineTuning.Tests;

/// <summary>The bad inputs of the issue, each with its documented error, and nothing half-created.</summary>
[Collection(TrainingCollection.Name)]
public sealed class JobsApiTests : IAsyncLifetime
{
    private readonly FineTuningFactory _factory = new(new Dictionary<string, string?> { ["FineTuning:MaxUploadBytes"] = "20000" });
    private HttpClient _http = null!;

    public ValueTask InitializeAsync()
    {
        _http = _factory.CreateClient();
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync() => await _factory.DisposeAsync();

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private async Task<(HttpStatusCode Status, JsonElement Body)> SendAsync(HttpMethod method, string path, HttpContent? content = null)
    {
        using var request = new HttpRequestMessage(method, path) { Content = content };
        using var response = await _http.SendAsync(request, Ct);
        var text = await response.Content.ReadAsStringAsync(Ct);
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    private static StringContent Jsonl(string text) => new(text, Encoding.UTF8, "application/jsonl");

    [Fact]
    public async Task UploadFile_MalformedLine_Returns400NamingTheLine()
    {
        var lines = TestData.ChatLines(3);
        lines.Insert(2, """{"messages": [{"role": "user", "content": "unterminated""");

        var (status, body) = await SendAsync(HttpMethod.Post, "/api/fine-tuning/files", Jsonl(string.Join("\n", lines)));

        status.Should().Be(HttpStatusCode.BadRequest);
        body.GetProperty("detail").GetString().Should().Contain("line 3: invalid JSON");
        body.GetProperty("errors")[0].GetProperty("line").GetInt32().Should().Be(3);
    }

    [Fact]
    public async Task UploadFile_Empty_Returns400()
    {
        var (status, body) = await SendAsync(HttpMethod.Post, "/api/fine-tuning/files", Jsonl(""));

        status.Should().Be(HttpStatusCode.BadRequest);
        body.GetProperty("title").GetString().Should().Be("The file is empty.");
    }

    [Fact]
    public async Task UploadFile_OverTheConfiguredSize_Returns413WithTheLimit()
    {
        var (status, body) = await SendAsync(HttpMethod.Post, "/api/fine-tuning/files", Jsonl(string.Join("\n", TestData.ChatLines(200))));

        status.Should().Be(HttpStatusCode.RequestEntityTooLarge);
        body.GetProperty("detail").GetString().Should().Contain("20,000 bytes").And.Contain("FineTuning:MaxUploadBytes");
    }

    [Fact]
    public async Task UploadFile_Valid_ReturnsIdShaAndExampleCount()
    {
        var content = TestData.Jsonl(TestData.ChatLines(12));

        var file = await Api.UploadAsync(_http, content);

        file.GetProperty("id").GetString().Should().StartWith("file-");
        file.GetProperty("examples").GetInt32().Should().Be(12);
        file.GetProperty("sha256").GetString().Should().Be(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(content)));
    }

    [Fact]
    public async Task CreateJob_UnknownModelMissingFileAndBadHyperparameters_Returns400PerFieldAndCreatesNothing()
    {
        var file = await Api.UploadAsync(_http, TestData.Jsonl(TestData.ChatLines(12)));

        var (status, body) = await SendAsync(HttpMethod.Post, "/api/fine-tuning/jobs", JsonContent.Create(new
        {
            model = "no-such-model",
            training_file = file.GetProperty("id").GetString(),
            validation_file = "file-missing",
            suffix = "Bad Suffix",
            hyperparameters = new Dictionary<string, object> { ["n_epochs"] = 0, ["learning_rate"] = 5, ["lr_scheduler"] = "step", ["batch_size"] = "auto", ["momentum"] = 0.9, ["dropout"] = "lots" },
        }));

        status.Should().Be(HttpStatusCode.BadRequest);
        var errors = body.GetProperty("errors");
        errors.GetProperty("model")[0].GetString().Should().Contain("'no-such-model' is not registered");
        errors.GetProperty("validation_file")[0].GetString().Should().Contain("file-missing");
        errors.GetProperty("suffix")[0].GetString().Should().Contain("not a valid suffix");
        errors.GetProperty("hyperparameters.n_epochs")[0].GetString().Should().Contain("out of range [1, 100]");
        errors.GetProperty("hyperparameters.learning_rate")[0].GetString().Should().Contain("out of range");
        errors.GetProperty("hyperparameters.lr_scheduler")[0].GetString().Should().Contain("cosine, linear, constant");
        errors.GetProperty("hyperparameters.momentum")[0].GetString().Should().Contain("Unknown hyperparameter");
        errors.GetProperty("hyperparameters.dropout")[0].GetString().Should().Contain("not a number");
        errors.TryGetProperty("hyperparameters.batch_size", out _).Should().BeFalse("auto is always allowed");
        var jobs = await Api.GetJsonAsync(_http, "/api/fine-tuning/jobs");
        jobs.GetProperty("data").GetArrayLength().Should().Be(0);
    }

    [Fact]
    public async Task CreateJob_MissingBody_Returns400ProblemDetails()
    {
        var (status, body) = await SendAsync(HttpMethod.Post, "/api/fine-tuning/jobs", new StringContent("{\"model\": ", Encoding.UTF8, "application/json"));

        status.Should().Be(HttpStatusCode.BadRequest);
        body.GetProperty("title").GetString().Should().Be("The request could not be read.");
    }

    [Fact]
    public async Task CreateJob_DataFailingTheGate_FailsInValidatingFilesWithTheReportAndCannotBeCancelled()
    {
        var file = await Api.UploadAsync(_http, TestData.Jsonl(TestData.ChatLines(6)));

        var created = await Api.CreateJobAsync(_http, new { model = "aspiretune-tiny", training_file = file.GetProperty("id").GetString() });
        var id = created.GetProperty("id").GetString()!;
        var job = await Api.WaitForJobAsync(_http, id, TimeSpan.FromSeconds(60));
        var (cancelStatus, cancelBody) = await SendAsync(HttpMethod.Post, $"/api/fine-tuning/jobs/{id}/cancel");

        created.GetProperty("status").GetString().Should().Be("validating_files");
        job.GetProperty("status").GetString().Should().Be("failed");
        job.GetProperty("error").GetProperty("code").GetString().Should().Be("invalid_training_file");
        job.GetProperty("quality_report").GetProperty("failures")[0].GetString().Should().Contain("Only 6 example(s) remain");
        job.GetProperty("quality_report").GetProperty("tokens").GetProperty("max").GetInt32().Should().BeGreaterThan(0);
        cancelStatus.Should().Be(HttpStatusCode.Conflict);
        cancelBody.GetProperty("detail").GetString().Should().Contain("is failed");
    }

    [Fact]
    public async Task CancelJob_Queued_IsCancelledAtOnceAndNeverTrains()
    {
        await using var factory = new FineTuningFactory(new Dictionary<string, string?> { ["FineTuning:WorkerEnabled"] = "false" });
        var http = factory.CreateClient();
        var file = await Api.UploadAsync(http, TestData.Jsonl(TestData.ChatLines(20)));
        var id = (await Api.CreateJobAsync(http, new { model = "aspiretune-tiny", training_file = file.GetProperty("id").GetString() })).GetProperty("id").GetString()!;
        await Api.WaitForJobAsync(http, id, TimeSpan.FromSeconds(60), "queued");

        var response = await http.PostAsync($"/api/fine-tuning/jobs/{id}/cancel", null, Ct);
        var job = await response.Content.ReadFromJsonAsync<JsonElement>(Ct);
        var events = await Api.GetJsonAsync(http, $"/api/fine-tuning/jobs/{id}/events");

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        job.GetProperty("status").GetString().Should().Be("cancelled");
        events.GetProperty("data").EnumerateArray().Select(e => e.GetProperty("type").GetString()).Should().Equal("created", "validated", "queued", "cancelled");
    }

    [Fact]
    public async Task GetJob_UnknownId_Returns404()
    {
        var (status, body) = await SendAsync(HttpMethod.Get, $"/api/fine-tuning/jobs/ftjob-{Guid.NewGuid():N}");
        var (cancelStatus, _) = await SendAsync(HttpMethod.Post, "/api/fine-tuning/jobs/not-a-job/cancel");

        status.Should().Be(HttpStatusCode.NotFound);
        body.GetProperty("title").GetString().Should().Be("Job not found.");
        cancelStatus.Should().Be(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task ImportModel_PathOutsideTheDataFolder_Returns400AndRegistersNothing()
    {
        var outside = Path.GetTempPath();

        var (absolute, body) = await SendAsync(HttpMethod.Post, "/api/models/import", JsonContent.Create(new { path = outside, name = "escape" }));
        var (relative, _) = await SendAsync(HttpMethod.Post, "/api/models/import", JsonContent.Create(new { path = "../../etc", name = "escape" }));
        var models = await Api.GetJsonAsync(_http, "/api/models");

        absolute.Should().Be(HttpStatusCode.BadRequest);
        relative.Should().Be(HttpStatusCode.BadRequest);
        body.GetProperty("errors").GetProperty("path")[0].GetString().Should().Contain("outside the data folder");
        models.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()).Should().Equal("aspiretune-tiny");
    }

    [Fact]
    public async Task ImportModel_NotAModelOrBadName_Returns400WithTheReason()
    {
        Directory.CreateDirectory(Path.Combine(_factory.DataFolder, "empty-dir"));
        Directory.CreateDirectory(Path.Combine(_factory.DataFolder, "broken"));
        await File.WriteAllTextAsync(Path.Combine(_factory.DataFolder, "broken", "config.json"), "{\"model_type\": \"gpt2\",", Ct);

        var (notModel, body) = await SendAsync(HttpMethod.Post, "/api/models/import", JsonContent.Create(new { path = "empty-dir", name = "empty" }));
        var (badName, nameBody) = await SendAsync(HttpMethod.Post, "/api/models/import", JsonContent.Create(new { path = "empty-dir", name = "has space" }));
        var (missing, _) = await SendAsync(HttpMethod.Post, "/api/models/import", JsonContent.Create(new { path = "nowhere", name = "nowhere" }));
        var (broken, brokenBody) = await SendAsync(HttpMethod.Post, "/api/models/import", JsonContent.Create(new { path = Path.Combine(_factory.DataFolder, "broken"), name = "broken" }));

        notModel.Should().Be(HttpStatusCode.BadRequest);
        body.GetProperty("errors").GetProperty("path")[0].GetString().Should().Contain("no config.json");
        badName.Should().Be(HttpStatusCode.BadRequest);
        nameBody.GetProperty("errors").GetProperty("name")[0].GetString().Should().Contain("not a valid model id");
        missing.Should().Be(HttpStatusCode.BadRequest);
        broken.Should().Be(HttpStatusCode.BadRequest);
        brokenBody.GetProperty("errors").GetProperty("path")[0].GetString().Should().Contain("config.json is not valid JSON");
        (await Api.GetJsonAsync(_http, "/api/models")).GetProperty("data").GetArrayLength().Should().Be(1);
    }

    [Fact]
    public async Task Models_UnregisteredName_Returns404InBothApis()
    {
        var (get, _) = await SendAsync(HttpMethod.Get, "/api/models/nope");
        var (delete, _) = await SendAsync(HttpMethod.Delete, "/api/models/nope");
        var (chat, body) = await SendAsync(HttpMethod.Post, "/v1/chat/completions",
            JsonContent.Create(new { model = "nope", messages = new[] { new { role = "user", content = "hi" } } }));
        var (builtIn, _) = await SendAsync(HttpMethod.Delete, "/api/models/aspiretune-tiny");

        get.Should().Be(HttpStatusCode.NotFound);
        delete.Should().Be(HttpStatusCode.NotFound);
        chat.Should().Be(HttpStatusCode.NotFound);
        body.GetProperty("error").GetProperty("code").GetString().Should().Be("model_not_found");
        body.GetProperty("error").GetProperty("param").GetString().Should().Be("model");
        body.GetProperty("error").GetProperty("type").GetString().Should().Be("invalid_request_error");
        builtIn.Should().Be(HttpStatusCode.Conflict);
    }

    [Fact]
    public async Task V1_BadRequests_ReturnOpenAiErrorsNamingTheParameter()
    {
        var cases = new (string Path, string Body, string Param)[]
        {
            ("/v1/chat/completions", "{not json", ""),
            ("/v1/chat/completions", """{"model":"aspiretune-tiny"}""", "messages"),
            ("/v1/chat/completions", """{"model":"aspiretune-tiny","messages":[{"role":"wizard","content":"x"}]}""", "messages[0].role"),
            ("/v1/chat/completions", """{"model":"aspiretune-tiny","messages":[{"role":"user","content":"x"}],"temperature":3}""", "temperature"),
            ("/v1/chat/completions", """{"model":"aspiretune-tiny","messages":[{"role":"user","content":"x"}],"max_tokens":100000}""", "max_tokens"),
            ("/v1/completions", """{"model":"aspiretune-tiny","prompt":{"a":1}}""", "prompt"),
            ("/v1/completions", """{"model":"aspiretune-tiny","prompt":[1, 999999]}""", "prompt"),
            ("/v1/completions", """{"model":"aspiretune-tiny","prompt":"x","logprobs":50}""", "logprobs"),
        };
        foreach (var (path, json, param) in cases)
        {
            var (status, body) = await SendAsync(HttpMethod.Post, path, new StringContent(json, Encoding.UTF8, "application/json"));

            status.Should().Be(HttpStatusCode.BadRequest, json);
            var error = body.GetProperty("error");
            error.GetProperty("message").GetString().Should().NotBeNullOrWhiteSpace();
            if (param.Length > 0)
                error.GetProperty("param").GetString().Should().Be(param, json);
        }
    }

    [Fact]
    public async Task OpenApi_Document_DescribesEveryFineTuningRoute()
    {
        var document = await _http.GetStringAsync("/openapi/v1.json", Ct);

        foreach (var route in new[] { "/api/fine-tuning/files", "/api/fine-tuning/jobs/{id}/cancel", "/api/fine-tuning/jobs/{id}/checkpoints", "/api/models/import", "/v1/chat/completions", "/v1/completions" })
            document.Should().Contain($"\"{route}\"");
    }
}

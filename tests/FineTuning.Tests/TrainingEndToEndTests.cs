using System.ClientModel;
using System.ClientModel.Primitives;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using OpenAI;
using OpenAI.Chat;

namespace AspireTune.FineTuning.Tests;

/// <summary>One job trained in process (SQLite, in-memory bus), shared by the tests that read its results.</summary>
public sealed class TrainedModelFixture : IAsyncLifetime
{
    public FineTuningFactory Factory { get; } = new();
    public HttpClient Http { get; private set; } = null!;
    public JsonElement File { get; private set; }
    public JsonElement Job { get; private set; }
    public string ModelId => Job.GetProperty("fine_tuned_model").GetString()!;

    public async ValueTask InitializeAsync()
    {
        Http = Factory.CreateClient();
        File = await Api.UploadAsync(Http, TestData.Jsonl(TestData.ChatLines(40)));
        var created = await Api.CreateJobAsync(Http, new
        {
            model = "aspiretune-tiny",
            training_file = File.GetProperty("id").GetString(),
            suffix = "sentiment",
            hyperparameters = new Dictionary<string, object> { ["n_epochs"] = 3, ["batch_size"] = 4, ["learning_rate"] = 0.003, ["eval_interval"] = 5, ["checkpoint_interval"] = 5 },
        });
        Job = await Api.WaitForJobAsync(Http, created.GetProperty("id").GetString()!, TimeSpan.FromMinutes(2));
    }

    public async ValueTask DisposeAsync() => await Factory.DisposeAsync();
}

[Collection(TrainingCollection.Name)]
public sealed class TrainingEndToEndTests(TrainedModelFixture fixture) : IClassFixture<TrainedModelFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private HttpClient Http => fixture.Http;
    private string JobId => fixture.Job.GetProperty("id").GetString()!;

    [Fact]
    public async Task CreateJob_SmallDataset_SucceedsWithEventsCheckpointsAndMetrics()
    {
        var events = await Api.GetJsonAsync(Http, $"/api/fine-tuning/jobs/{JobId}/events");
        var checkpoints = await Api.GetJsonAsync(Http, $"/api/fine-tuning/jobs/{JobId}/checkpoints");
        var metrics = await Api.GetJsonAsync(Http, $"/api/fine-tuning/jobs/{JobId}/metrics");

        fixture.Job.GetProperty("status").GetString().Should().Be("succeeded", fixture.Job.ToString());
        fixture.Job.GetProperty("fine_tuned_model").GetString().Should().StartWith("ft:aspiretune-tiny:sentiment:");
        fixture.Job.GetProperty("hyperparameters").GetProperty("n_epochs").GetInt32().Should().Be(3);
        fixture.Job.GetProperty("hyperparameters").GetProperty("lr_scheduler").GetString().Should().Be("cosine");
        fixture.Job.GetProperty("quality_report").GetProperty("passed").GetBoolean().Should().BeTrue();
        fixture.Job.GetProperty("best_metrics").EnumerateArray().Select(m => m.GetProperty("name").GetString()).Should().Contain("valid_loss");
        var types = events.GetProperty("data").EnumerateArray().Select(e => e.GetProperty("type").GetString()).ToList();
        types.First().Should().Be("created");
        types.Last().Should().Be("succeeded");
        types.Should().ContainInOrder("created", "validated", "queued", "started", "checkpoint", "succeeded");
        types.Count(t => t == "succeeded").Should().Be(1);
        var steps = checkpoints.GetProperty("data").EnumerateArray().Select(c => c.GetProperty("step_number").GetInt32()).ToList();
        steps.Should().NotBeEmpty().And.BeInDescendingOrder();
        checkpoints.GetProperty("data")[0].GetProperty("metrics").GetProperty("valid_loss").GetDouble().Should().BePositive();
        metrics.GetProperty("data").EnumerateArray().Should().Contain(m => m.GetProperty("valid_mean_token_accuracy").ValueKind == JsonValueKind.Number);
    }

    [Fact]
    public async Task Registry_TrainedModel_HasLineageAndIsServed()
    {
        var model = await Api.GetJsonAsync(Http, $"/api/models/{fixture.ModelId}");
        var served = await Api.GetJsonAsync(Http, "/v1/models");

        model.GetProperty("source").GetString().Should().Be("fine_tuned");
        var lineage = model.GetProperty("lineage");
        lineage.GetProperty("base_model").GetString().Should().Be("aspiretune-tiny");
        lineage.GetProperty("job_id").GetString().Should().Be(JobId);
        lineage.GetProperty("dataset_sha256").GetString().Should().Be(fixture.File.GetProperty("sha256").GetString());
        lineage.GetProperty("hyperparameters").GetProperty("batch_size").GetInt32().Should().Be(4);
        served.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()).Should().Contain([fixture.ModelId, "aspiretune-tiny"]);
    }

    [Fact]
    public async Task ChatCompletions_OpenAiSdk_GetsTheSameAnswersAsRawHttpStreamingIncluded()
    {
        var prompt = "The soup was excellent and the bread seemed lovely on visit 99";
        var client = new ChatClient(fixture.ModelId, new ApiKeyCredential("not-needed-on-loopback"), new OpenAIClientOptions
        {
            Endpoint = new Uri(Http.BaseAddress!, "v1"),
            Transport = new HttpClientPipelineTransport(Http),
        });
        ChatMessage[] messages = [new SystemChatMessage("Classify the sentiment."), new UserChatMessage(prompt)];
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 12 };

        ChatCompletion sdk = await client.CompleteChatAsync(messages, options, Ct);
        var sdkStream = new StringBuilder();
        await foreach (var update in client.CompleteChatStreamingAsync(messages, options, Ct))
            foreach (var part in update.ContentUpdate)
                sdkStream.Append(part.Text);
        var rawBody = new
        {
            model = fixture.ModelId,
            messages = new[] { new { role = "system", content = "Classify the sentiment." }, new { role = "user", content = prompt } },
            temperature = 0,
            max_tokens = 12,
        };
        var raw = await (await Http.PostAsJsonAsync("/v1/chat/completions", rawBody, Ct)).Content.ReadFromJsonAsync<JsonElement>(Ct);
        var rawStream = await ReadSseContentAsync(await Http.PostAsJsonAsync("/v1/chat/completions", new
        {
            rawBody.model, rawBody.messages, rawBody.temperature, rawBody.max_tokens, stream = true,
        }, Ct));

        var rawText = raw.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString();
        sdk.Content.Should().ContainSingle().Which.Text.Should().Be(rawText);
        sdkStream.ToString().Should().Be(rawText);
        rawStream.Should().Be(rawText);
        sdk.Usage.InputTokenCount.Should().Be(raw.GetProperty("usage").GetProperty("prompt_tokens").GetInt32()).And.BePositive();
        sdk.Usage.OutputTokenCount.Should().Be(raw.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        sdk.FinishReason.Should().BeOneOf(ChatFinishReason.Stop, ChatFinishReason.Length);
    }

    private static async Task<string> ReadSseContentAsync(HttpResponseMessage response)
    {
        response.Content.Headers.ContentType!.MediaType.Should().Be("text/event-stream");
        var text = new StringBuilder();
        var done = false;
        foreach (var line in (await response.Content.ReadAsStringAsync(Ct)).Split('\n'))
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal))
                continue;
            if (line == "data: [DONE]")
            {
                done = true;
                continue;
            }
            var chunk = JsonDocument.Parse(line[6..]).RootElement;
            foreach (var choice in chunk.GetProperty("choices").EnumerateArray())
                if (choice.GetProperty("delta").TryGetProperty("content", out var content))
                    text.Append(content.GetString());
        }
        done.Should().BeTrue("the stream ends with data: [DONE]");
        return text.ToString();
    }

    [Fact]
    public async Task Completions_EchoWithMaxTokensZero_ScoresThePromptTokenByToken()
    {
        var response = await Http.PostAsJsonAsync("/v1/completions", new { model = fixture.ModelId, prompt = "positive or negative", echo = true, max_tokens = 0, logprobs = 0 }, Ct);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(Ct);
        var ids = Encoding.UTF8.GetBytes("positive or negative").Select(b => (int)b).ToArray(); // the built-in vocabulary is bytes
        var byIds = await (await Http.PostAsJsonAsync("/v1/completions", new { model = fixture.ModelId, prompt = ids, echo = true, max_tokens = 0, logprobs = 0 }, Ct))
            .Content.ReadFromJsonAsync<JsonElement>(Ct);

        response.StatusCode.Should().Be(HttpStatusCode.OK, body.ToString());
        var choice = body.GetProperty("choices")[0];
        choice.GetProperty("text").GetString().Should().Be("positive or negative");
        var logprobs = choice.GetProperty("logprobs").GetProperty("token_logprobs").EnumerateArray().ToList();
        logprobs.Should().HaveCount(ids.Length);
        logprobs[0].ValueKind.Should().Be(JsonValueKind.Null);
        logprobs.Skip(1).Should().AllSatisfy(l => l.GetDouble().Should().BeNegative());
        choice.GetProperty("logprobs").GetProperty("tokens").EnumerateArray().Select(t => t.GetString()).Should().StartWith(["p", "o", "s"]);
        body.GetProperty("usage").GetProperty("completion_tokens").GetInt32().Should().Be(0);
        byIds.GetProperty("choices")[0].GetProperty("logprobs").GetProperty("token_logprobs").ToString()
            .Should().Be(choice.GetProperty("logprobs").GetProperty("token_logprobs").ToString());
    }

    [Fact]
    public async Task Completions_StopAndLogprobs_EndBeforeTheStopSequence()
    {
        var body = await (await Http.PostAsJsonAsync("/v1/completions", new
        {
            model = fixture.ModelId, prompt = "<|user|>\nThe wine was awful\n<|assistant|>\n", max_tokens = 20, temperature = 0, logprobs = 2, stop = new[] { "e" },
        }, Ct)).Content.ReadFromJsonAsync<JsonElement>(Ct);

        var choice = body.GetProperty("choices")[0];
        choice.GetProperty("text").GetString().Should().NotContain("e");
        choice.GetProperty("logprobs").GetProperty("top_logprobs").EnumerateArray().Should().AllSatisfy(t => t.EnumerateObject().Count().Should().BeLessThanOrEqualTo(2));
    }

    [Fact]
    public async Task ExportAndImport_WithoutTokenizer_ServesTokenIdPromptsOnly()
    {
        var zip = await Http.GetByteArrayAsync($"/api/models/{fixture.ModelId}/export", Ct);
        var target = Path.Combine(fixture.Factory.DataFolder, "imports", "no-tokenizer");
        ZipFile.ExtractToDirectory(new MemoryStream(zip), target);
        foreach (var name in new[] { "tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json" })
            System.IO.File.Delete(Path.Combine(target, name));

        var imported = await Http.PostAsJsonAsync("/api/models/import", new { path = "imports/no-tokenizer", name = "bare-model" }, Ct);
        var model = await imported.Content.ReadFromJsonAsync<JsonElement>(Ct);
        var chat = await Http.PostAsJsonAsync("/v1/chat/completions", new { model = "bare-model", messages = new[] { new { role = "user", content = "hi" } } }, Ct);
        var text = await Http.PostAsJsonAsync("/v1/completions", new { model = "bare-model", prompt = "hi" }, Ct);
        var ids = await Http.PostAsJsonAsync("/v1/completions", new { model = "bare-model", prompt = new[] { 104, 105 }, max_tokens = 3, temperature = 0 }, Ct);
        var idsBody = await ids.Content.ReadFromJsonAsync<JsonElement>(Ct);
        var delete = await Http.DeleteAsync("/api/models/bare-model", Ct);

        imported.StatusCode.Should().Be(HttpStatusCode.Created, model.ToString());
        model.GetProperty("has_tokenizer").GetBoolean().Should().BeFalse();
        model.GetProperty("parameters").GetInt64().Should().BePositive();
        chat.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        text.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await text.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error").GetProperty("code").GetString().Should().Be("model_without_tokenizer");
        ids.StatusCode.Should().Be(HttpStatusCode.OK, idsBody.ToString());
        idsBody.GetProperty("choices")[0].GetProperty("token_ids").GetArrayLength().Should().BeInRange(1, 3);
        delete.StatusCode.Should().Be(HttpStatusCode.NoContent);
        Directory.Exists(target).Should().BeTrue("an imported directory belongs to whoever put it there");
    }
}

using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using AspireTune.Contracts.Evaluation;
using AspireTune.Evaluation.Data;
using AspireTune.MockOpenAI;
using AspireTune.ServiceDefaults.Artifacts;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace AspireTune.Evaluation.Tests;

public class ConsumerAndRetrievalTests
{
    [Fact]
    public async Task RunEvaluation_DeliveredTwice_OneRunAndOneEvaluationCompleted()
    {
        await using var mock = await MockOpenAIServer.StartAsync(configure: RunTests.Classifier);
        await using var host = EvaluationHost.Start();
        await host.AddEndpointAsync("clf", mock.BaseUrl, "clf");
        await host.AddPromptAsync("spam", RunTests.ClassifierTemplate);
        var dataset = await host.Services.GetRequiredService<IArtifactStore>().PutAsync(
            new MemoryStream(System.Text.Encoding.UTF8.GetBytes(RunTests.SpamJsonl)), "datasets", "spam.jsonl", "application/jsonl");
        var command = new RunEvaluation
        {
            RunId = Guid.NewGuid(),
            ExperimentId = Guid.NewGuid(),
            Prompts = ["spam"],
            ModelEndpoints = ["clf"],
            Dataset = dataset,
            Scorers = ["label"],
        };

        await host.Harness.Bus.Publish(command);
        await host.Harness.Bus.Publish(command);
        var run = await WaitForRunToExist(host, command.RunId);
        run = await host.WaitForRunAsync(run.Id);
        while (host.Harness.Consumed.Select<RunEvaluation>().Count() < 2)
            await Task.Delay(20);

        run.Status.Should().Be(RunStatus.Completed);
        run.ExperimentId.Should().Be(command.ExperimentId);
        await host.WaitForPublishedAsync<EvaluationCompleted>(e => e.RunId == command.RunId);
        var completed = host.Published<EvaluationCompleted>().Should().ContainSingle(e => e.RunId == command.RunId).Subject;
        completed.ExperimentId.Should().Be(command.ExperimentId);
        completed.Summaries.Single().Metrics.Single(m => m.Name == "label_accuracy").Value.Should().BeApproximately(10.0 / 12, 1e-9);
        (await host.Client.GetFromJsonAsync<List<JsonElement>>("/api/evaluation/runs"))!.Should().ContainSingle();
    }

    [Fact]
    public async Task RunEvaluation_UnknownPromptAndEndpoint_PublishesEvaluationFailedWithReasons()
    {
        await using var host = EvaluationHost.Start();
        var dataset = await host.Services.GetRequiredService<IArtifactStore>().PutAsync(
            new MemoryStream("{\"input\":\"a\"}\n"u8.ToArray()), "datasets", "a.jsonl", "application/jsonl");
        var command = new RunEvaluation { RunId = Guid.NewGuid(), Prompts = ["nope@3"], ModelEndpoints = ["ghost"], Dataset = dataset };

        await host.Harness.Bus.Publish(command);
        var run = await host.WaitForRunAsync((await WaitForRunToExist(host, command.RunId)).Id);

        run.Status.Should().Be(RunStatus.Failed);
        await host.WaitForPublishedAsync<EvaluationFailed>(e => e.RunId == command.RunId);
        var failed = host.Published<EvaluationFailed>().Should().ContainSingle(e => e.RunId == command.RunId).Subject;
        failed.Reason.Should().Contain("Prompt 'nope' has no version 3").And.Contain("Model endpoint 'ghost' does not exist");
    }

    private static async Task<Apis.RunResponse> WaitForRunToExist(EvaluationHost host, Guid id)
    {
        for (var i = 0; i < 600; i++)
        {
            var response = await host.Client.GetAsync($"/api/evaluation/runs/{id}");
            if (response.StatusCode == HttpStatusCode.OK)
                return (await response.Content.ReadFromJsonAsync<Apis.RunResponse>(EvaluationHost.Json))!;
            await Task.Delay(50);
        }
        throw new TimeoutException($"Run {id} was never created.");
    }

    [Fact]
    public async Task Run_WithRetrievalCollection_FillsExamplesAndContextFromRetrievalService()
    {
        await using var retrieval = await FakeRetrievalService.StartAsync();
        await using var mock = await MockOpenAIServer.StartAsync(); // echoes the rendered prompt
        await using var host = EvaluationHost.Start(settings: new Dictionary<string, string?> { ["Evaluation:RetrievalBaseUrl"] = retrieval.BaseUrl });
        await host.AddEndpointAsync("echo", mock.BaseUrl, "echo");
        await host.AddPromptAsync("fewshot", "{{$examples}}\n## Context\n{{$context}}\n## Now\nInput: {{$input}}");
        var dataset = await host.UploadDatasetAsync("d", EvaluationHost.Jsonl([new { input = "cheap watches", expected = "spam" }]));

        var missing = await host.Client.PostAsJsonAsync("/api/evaluation/runs", new { prompts = new[] { "fewshot" }, modelEndpoints = new[] { "echo" }, dataset = dataset.Sha256 });
        missing.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await missing.Content.ReadAsStringAsync()).Should().Contain("retrievalCollection");

        var run = await host.WaitForRunAsync((await host.StartRunAsync(new
        {
            prompts = new[] { "fewshot" },
            modelEndpoints = new[] { "echo" },
            dataset = dataset.Sha256,
            retrievalCollection = "spam-train",
            retrievalTopK = 2,
            scorers = new[] { "contains:Output: spam" },
        })).Id);

        run.Status.Should().Be(RunStatus.Completed);
        var output = (await host.ResultsAsync(run.Id)).Single().GetProperty("output").GetString();
        output.Should().Be("Input: win cash now\nOutput: spam\n\nInput: lunch today\nOutput: ham\n## Context\nwin cash now\n\nlunch today\n\nA passage without label\n## Now\nInput: cheap watches");
        var call = retrieval.Calls.Should().ContainSingle().Subject;
        call.Collection.Should().Be("spam-train");
        call.Body.GetProperty("text").GetString().Should().Be("cheap watches");
        call.Body.GetProperty("k").GetInt32().Should().Be(2);
    }

    /// <summary>A real HTTP server answering the Retrieval service's neighbors contract.</summary>
    private sealed class FakeRetrievalService : IAsyncDisposable
    {
        private readonly WebApplication _app;

        private FakeRetrievalService(WebApplication app, string baseUrl)
        {
            _app = app;
            BaseUrl = baseUrl;
        }

        public string BaseUrl { get; }
        public ConcurrentQueue<(string Collection, JsonElement Body)> Calls { get; } = new();

        public static async Task<FakeRetrievalService> StartAsync()
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            var app = builder.Build();
            FakeRetrievalService? self = null;
            app.MapPost("/api/retrieval/collections/{collection}/neighbors", async (string collection, HttpRequest request) =>
            {
                var body = await JsonSerializer.DeserializeAsync<JsonElement>(request.Body);
                self!.Calls.Enqueue((collection, body));
                return Results.Json(new
                {
                    collection,
                    neighbors = new object[]
                    {
                        new { id = "1", score = 0.9, text = "win cash now", label = "spam", metadata = new { source = "train" } },
                        new { id = "2", score = 0.7, text = "lunch today", label = "ham", metadata = new { } },
                        new { id = "3", score = 0.5, text = "A passage without label", label = (string?)null, metadata = new { } },
                    },
                });
            });
            await app.StartAsync();
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            self = new FakeRetrievalService(app, address);
            return self;
        }

        public async ValueTask DisposeAsync() => await _app.DisposeAsync();
    }
}

using System.Collections.Concurrent;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using AspireTune.Contracts.Common;
using AspireTune.Contracts.Retrieval;
using AspireTune.ServiceDefaults.Artifacts;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;

namespace AspireTune.Retrieval.Tests;

public class ConsumerTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>Collects what the host's bus publishes, on a temporary endpoint of its own.</summary>
    private sealed class Listener
    {
        public ConcurrentQueue<CollectionIndexed> Indexed { get; } = new();
        public ConcurrentQueue<Fault<IndexDataset>> Faults { get; } = new();

        public static async Task<Listener> ConnectAsync(IBus bus)
        {
            var listener = new Listener();
            var handle = bus.ConnectReceiveEndpoint($"retrieval-test-{Guid.NewGuid():N}", e =>
            {
                e.Handler<CollectionIndexed>(ctx => { listener.Indexed.Enqueue(ctx.Message); return Task.CompletedTask; });
                e.Handler<Fault<IndexDataset>>(ctx => { listener.Faults.Enqueue(ctx.Message); return Task.CompletedTask; });
            });
            await handle.Ready;
            return listener;
        }

        public static async Task WaitForAsync(Func<bool> condition, string what)
        {
            for (var i = 0; i < 600 && !condition(); i++)
                await Task.Delay(100, Ct);
            condition().Should().BeTrue($"{what} within a minute");
        }
    }

    private static async Task<ArtifactRef> PutAsync(IServiceProvider services, string fileName, string content, string contentType) =>
        await services.GetRequiredService<IArtifactStore>().PutAsync(new MemoryStream(Encoding.UTF8.GetBytes(content)), "datasets", fileName, contentType, Ct);

    [Fact]
    public async Task IndexDataset_RedeliveredAndResent_IndexesOnceAndPublishesOneEvent()
    {
        await using var host = new RetrievalHost();
        var services = host.Services;
        var bus = services.GetRequiredService<IBus>();
        var listener = await Listener.ConnectAsync(bus);
        var examples = Corpus.LabelledSentences(30, seed: 3);
        // The last line repeats the first input: one point per distinct input.
        string Line((string Text, string Label) e) => System.Text.Json.JsonSerializer.Serialize(new { input = e.Text, expected = e.Label, metadata = new { source = "synthetic" } });
        var jsonl = string.Join('\n', examples.Append(examples[0]).Select(Line));
        var dataset = await PutAsync(services, "train.jsonl", jsonl, "application/jsonl");
        var command = new IndexDataset { RequestId = Guid.NewGuid(), ExperimentId = Guid.NewGuid(), Collection = "fewshot", Dataset = dataset };
        var messageId = NewId.NextGuid();

        await bus.Publish(command, ctx => ctx.MessageId = messageId, Ct);
        await bus.Publish(command, ctx => ctx.MessageId = messageId, Ct); // a redelivery
        await bus.Publish(command, Ct); // a re-send of the same request
        // One consumer at a time (its definition), in order: once the sentinel is indexed, the duplicate has been handled.
        var sentinel = command with { RequestId = Guid.NewGuid(), Collection = "sentinel" };
        await bus.Publish(sentinel, Ct);
        await Listener.WaitForAsync(() => listener.Indexed.Any(e => e.RequestId == sentinel.RequestId), "the sentinel's CollectionIndexed");

        var events = listener.Indexed.Where(e => e.RequestId == command.RequestId).ToList();
        events.Should().ContainSingle();
        events[0].ExperimentId.Should().Be(command.ExperimentId);
        events[0].Collection.Should().Be("fewshot");
        events[0].Points.Should().Be(30);
        events[0].EmbeddingModel.Should().Be("local-hashing");
        events[0].Dimensions.Should().Be(384);
        var info = await host.CreateClient().GetFromJsonAsync<JsonObject>("/api/retrieval/collections/fewshot", Ct);
        info!["points"]!.GetValue<long>().Should().Be(30);
        info["metadataFields"]!.AsArray().Select(f => f!.GetValue<string>()).Should().Equal("source");
    }

    [Fact]
    public async Task IndexDataset_BadLine_FaultsNamingTheLine()
    {
        await using var host = new RetrievalHost(settings: new Dictionary<string, string> { ["Messaging:RetryLimit"] = "1", ["Messaging:RetryMinIntervalMs"] = "10", ["Messaging:RetryMaxIntervalMs"] = "20" });
        var services = host.Services;
        var bus = services.GetRequiredService<IBus>();
        var listener = await Listener.ConnectAsync(bus);
        var dataset = await PutAsync(services, "bad.jsonl", "{\"input\": \"a\", \"expected\": \"x\"}\n{\"expected\": \"y\"}\n", "application/jsonl");

        await bus.Publish(new IndexDataset { RequestId = Guid.NewGuid(), Collection = "bad", Dataset = dataset }, Ct);
        await Listener.WaitForAsync(() => !listener.Faults.IsEmpty, "a Fault<IndexDataset>");

        listener.Faults.Single().Exceptions[0].Message.Should().Contain("line 2").And.Contain("'input' is missing");
        listener.Indexed.Should().BeEmpty();
    }

    [Fact]
    public async Task IngestDocuments_MarkdownArtifacts_ChunkedIndexedAndSearchable()
    {
        await using var host = new RetrievalHost();
        var services = host.Services;
        var bus = services.GetRequiredService<IBus>();
        var listener = await Listener.ConnectAsync(bus);
        var documents = new List<ArtifactRef>();
        foreach (var (id, text) in Corpus.Passages)
            documents.Add(await PutAsync(services, id + ".md", text, "text/markdown"));
        var command = new IngestDocuments { RequestId = Guid.NewGuid(), Collection = "manuals", Documents = documents, ChunkTokens = 64, ChunkOverlapTokens = 8 };

        await bus.Publish(command, Ct);
        await Listener.WaitForAsync(() => listener.Indexed.Any(e => e.RequestId == command.RequestId), "CollectionIndexed");

        listener.Indexed.Single().Documents.Should().Be(5);
        var found = await host.CreateClient().PostAsJsonAsync("/api/retrieval/collections/manuals/neighbors", new { text = "write-ahead logging durability", k = 1 }, Ct);
        var body = JsonNode.Parse(await found.Content.ReadAsStringAsync(Ct))!;
        body["neighbors"]![0]!["text"]!.GetValue<string>().Should().Contain("PostgreSQL");
    }
}

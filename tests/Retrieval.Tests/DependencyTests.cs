using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using AspireTune.Retrieval.Index;
using AspireTune.TestSupport;
using Microsoft.Extensions.Options;

namespace AspireTune.Retrieval.Tests;

public class DependencyTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static QdrantVectorIndex Adapter(Uri url, string? key, int retries = 1) =>
        new(new QdrantConnection(url, key), Options.Create(new QdrantOptions { RetryCount = retries, RetryDelayMs = 10, AttemptTimeoutSeconds = 5, UpsertBatchSize = 2 }));

    private static async Task RoundTripAsync(QdrantVectorIndex qdrant, string collection)
    {
        await qdrant.CreateCollectionAsync(collection, 3, VectorDistance.Cosine, Ct);
        await qdrant.CreateCollectionAsync(collection, 3, VectorDistance.Cosine, Ct); // idempotent
        var ids = Enumerable.Range(0, 5).Select(_ => Guid.NewGuid().ToString()).ToList();
        await qdrant.UpsertAsync(collection, ids.Select((id, i) => new IndexPoint(id, new[] { 1f, i, 0.5f },
            new PointPayload { Text = $"t{i}", DocumentId = "doc", Label = i % 2 == 0 ? "even" : "odd", Metadata = new() { ["n"] = JsonSerializer.SerializeToElement(i) } })).ToList(), Ct);

        (await qdrant.CountAsync(collection, Ct)).Should().Be(5);
        var hits = await qdrant.QueryAsync(collection, new[] { 1f, 3f, 0.5f }, 2, new Dictionary<string, string> { ["label"] = "odd" }, withVectors: true, Ct);
        hits.Should().HaveCount(2);
        hits[0].Payload.Text.Should().Be("t3");
        hits[0].Vector.Should().HaveCount(3);
        hits.Should().OnlyContain(h => h.Payload.Label == "odd");
        var byNumber = await qdrant.QueryAsync(collection, new[] { 1f, 0f, 0.5f }, 5, new Dictionary<string, string> { ["n"] = "4" }, false, Ct);
        byNumber.Should().ContainSingle().Which.Id.Should().Be(ids[4]);

        await qdrant.DeleteAsync(collection, [ids[0], ids[1]], Ct);
        (await qdrant.CountAsync(collection, Ct)).Should().Be(3);
        await qdrant.DeleteCollectionAsync(collection, Ct);
    }

    [Fact]
    public void QdrantFilter_LabelAndNumericMetadata_MatchesKeywordAndEitherType()
    {
        var filter = QdrantVectorIndex.ToFilter(new Dictionary<string, string> { ["label"] = "odd", ["n"] = "4" })!;

        filter.Must.Should().HaveCount(2);
        filter.Must[0].Field.Key.Should().Be("label");
        filter.Must[0].Field.Match.Keyword.Should().Be("odd");
        // "4" may have been stored as the JSON number 4 or the text "4": either matches.
        var either = filter.Must[1].Filter.Should;
        either.Select(c => c.Field.Key).Should().AllBe("metadata.n");
        either.Should().Contain(c => c.Field.Match.HasKeyword && c.Field.Match.Keyword == "4")
            .And.Contain(c => c.Field.Match.HasInteger && c.Field.Match.Integer == 4);
        QdrantVectorIndex.ToFilter(null).Should().BeNull();
    }

    [Fact]
    public void QdrantPayload_RoundTrip_KeepsTextLabelAndTypedMetadata()
    {
        var id = Guid.NewGuid().ToString();
        var payload = new PointPayload
        {
            Text = "win a prize", Label = "spam", DocumentId = "doc-1",
            Metadata = new() { ["n"] = JsonSerializer.SerializeToElement(4), ["source"] = JsonSerializer.SerializeToElement("mail"), ["tags"] = JsonSerializer.SerializeToElement(new[] { "a", "b" }), ["score"] = JsonSerializer.SerializeToElement(0.5) },
        };

        var point = QdrantVectorIndex.ToPoint(new IndexPoint(id, new[] { 1f, 2f }, payload));
        var back = QdrantVectorIndex.FromPayload(point.Payload);

        point.Id.Uuid.Should().Be(id);
        point.Payload["metadata"].StructValue.Fields["n"].IntegerValue.Should().Be(4, "numbers keep their type so numeric filters match");
        back.Text.Should().Be("win a prize");
        back.Label.Should().Be("spam");
        back.DocumentId.Should().Be("doc-1");
        back.Metadata.ToDictionary(m => m.Key, m => m.Value.GetRawText()).Should().BeEquivalentTo(new Dictionary<string, string>
        {
            ["n"] = "4", ["source"] = "\"mail\"", ["tags"] = "[\"a\",\"b\"]", ["score"] = "0.5",
        });
        QdrantVectorIndex.FromPayload(QdrantVectorIndex.ToPoint(new IndexPoint(id, new[] { 1f }, payload with { Label = null })).Payload).Label.Should().BeNull();
    }

    [Fact]
    public async Task Api_QdrantDown_Answers503WithoutHanging()
    {
        var closedPort = TestInfrastructure.FreePort();
        await using var host = new RetrievalHost(settings: new Dictionary<string, string>
        {
            ["ConnectionStrings:vectordb"] = $"http://127.0.0.1:{closedPort}",
            ["Retrieval:Qdrant:RetryCount"] = "2",
            ["Retrieval:Qdrant:RetryDelayMs"] = "20",
        });

        var response = await host.CreateCollectionAsync("kb");

        response.StatusCode.Should().Be(HttpStatusCode.ServiceUnavailable);
        response.Headers.RetryAfter.Should().NotBeNull();
        var problem = JsonNode.Parse(await response.Content.ReadAsStringAsync(Ct))!;
        problem["detail"]!.GetValue<string>().Should().Contain($"127.0.0.1:{closedPort}").And.Contain("after 2 retries");
    }

    [Fact]
    public async Task QdrantLive_WhenConfigured_RoundTrips()
    {
        var url = Environment.GetEnvironmentVariable("ASPIRETUNE_TEST_QDRANT") ?? Environment.GetEnvironmentVariable("ConnectionStrings__vectordb");
        if (string.IsNullOrWhiteSpace(url))
        {
            // No Qdrant server can be had on the build machines (not in Debian, npm or NuGet): this runs wherever one is configured.
            Assert.Skip("No Qdrant configured: set ASPIRETUNE_TEST_QDRANT (or ConnectionStrings__vectordb) to its gRPC URL or 'Endpoint=http://host:6334;Key=...' to run this test against a live server.");
            return;
        }
        var connection = QdrantConnection.Parse(url)!;
        using var qdrant = Adapter(connection.Endpoint, connection.ApiKey, retries: 3);
        await RoundTripAsync(qdrant, $"aspiretune_test_{Guid.NewGuid():N}");
    }

    [Fact]
    public async Task HostedEmbeddings_OpenAICompatibleEndpoint_IndexesAndChecksDimensions()
    {
        await using var server = new FakeOpenAIEmbeddings(dimensions: 64, apiKey: "sk-test-123");
        await server.StartAsync();
        await using var host = new RetrievalHost(settings: new Dictionary<string, string>
        {
            ["Retrieval:HostedEmbeddings:Endpoint"] = new Uri(server.Url, "/v1").ToString(),
            ["Retrieval:HostedEmbeddings:ApiKey"] = "sk-test-123",
        });
        var client = host.CreateClient();

        (await host.CreateCollectionAsync("hosted", new { embeddingModel = "text-embedding-3-small", dimensions = 64 })).StatusCode.Should().Be(HttpStatusCode.Created);
        (await client.PostAsJsonAsync("/api/retrieval/collections/hosted/documents",
            new { documents = Corpus.Passages.Select(p => new { id = p.Id, text = p.Text }) }, Ct)).EnsureSuccessStatusCode();
        var found = JsonNode.Parse(await (await client.PostAsJsonAsync("/api/retrieval/collections/hosted/neighbors", new { text = "write-ahead logging replicas", k = 1 }, Ct)).Content.ReadAsStringAsync(Ct))!;
        found["neighbors"]![0]!["text"]!.GetValue<string>().Should().Contain("PostgreSQL");
        server.Requests.Should().OnlyContain(r => r == "Bearer sk-test-123");

        await host.CreateCollectionAsync("wrongsize", new { embeddingModel = "text-embedding-3-small", dimensions = 32 });
        var mismatch = await client.PostAsJsonAsync("/api/retrieval/collections/wrongsize/documents", new { documents = new[] { new { id = "a", text = "some text" } } }, Ct);
        mismatch.StatusCode.Should().Be(HttpStatusCode.UnprocessableEntity);
        var detail = await mismatch.Content.ReadAsStringAsync(Ct);
        detail.Should().Contain("64-dimensional").And.Contain("holds 32").And.NotContain("sk-test-123");
    }

    [Fact]
    public async Task Reingest_EmbeddingFails_OldVersionStaysSearchable()
    {
        await using var server = new FakeOpenAIEmbeddings(dimensions: 64, apiKey: "sk-x", refuseTextContaining: "FORBIDDEN");
        await server.StartAsync();
        await using var host = new RetrievalHost(settings: new Dictionary<string, string>
        {
            ["Retrieval:HostedEmbeddings:Endpoint"] = new Uri(server.Url, "/v1").ToString(),
            ["Retrieval:HostedEmbeddings:ApiKey"] = "sk-x",
        });
        var client = host.CreateClient();
        await host.CreateCollectionAsync("kb", new { embeddingModel = "text-embedding-3-small", dimensions = 64 });
        (await client.PostAsJsonAsync("/api/retrieval/collections/kb/documents", new { documents = new[] { new { id = "menu", text = "Lentil soup is served on Mondays." } } }, Ct)).EnsureSuccessStatusCode();

        var failed = await client.PostAsJsonAsync("/api/retrieval/collections/kb/documents", new { documents = new[] { new { id = "menu", text = "FORBIDDEN pumpkin curry on Fridays." } } }, Ct);

        failed.StatusCode.Should().Be(HttpStatusCode.BadGateway);
        (await failed.Content.ReadAsStringAsync(Ct)).Should().Contain("refused model 'text-embedding-3-small'").And.Contain("status 400");
        var found = JsonNode.Parse(await (await client.PostAsJsonAsync("/api/retrieval/collections/kb/neighbors", new { text = "soup", k = 5 }, Ct)).Content.ReadAsStringAsync(Ct))!;
        found["neighbors"]!.AsArray().Should().ContainSingle().Which!["text"]!.GetValue<string>().Should().Be("Lentil soup is served on Mondays.");
    }
}

using System.Text.Json;
using AspireTune.Retrieval.Embeddings;
using AspireTune.Retrieval.Index;
using AspireTune.Retrieval.Ingestion;
using AspireTune.ServiceDefaults.Data;
using AspireTune.TestSupport;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using System.Numerics.Tensors;

namespace AspireTune.Retrieval.Tests;

public class ComponentTests
{
    [Fact]
    public async Task HashingEmbeddings_RelatedTexts_AreCloserThanUnrelated()
    {
        using var generator = new HashingEmbeddingGenerator(384);
        var vectors = await generator.GenerateAsync(["the striker scored a late goal", "a late goal by the striker", "bake the bread in a hot oven"], cancellationToken: TestContext.Current.CancellationToken);

        vectors.Should().HaveCount(3);
        vectors[0].Vector.Length.Should().Be(384);
        TensorPrimitives.Norm(vectors[0].Vector.Span).Should().BeApproximately(1f, 1e-4f);
        var related = TensorPrimitives.CosineSimilarity(vectors[0].Vector.Span, vectors[1].Vector.Span);
        var unrelated = TensorPrimitives.CosineSimilarity(vectors[0].Vector.Span, vectors[2].Vector.Span);
        related.Should().BeGreaterThan(unrelated + 0.4f);
    }

    [Fact]
    public void Chunk_LongMarkdown_RespectsSizeKeepsHeadingsAndOverlaps()
    {
        var sections = Enumerable.Range(1, 6).Select(i => $"## Section {i}\n\n" + string.Join(' ', Enumerable.Repeat($"sentence number {i} talks about topic {i}.", 12)));
        var text = string.Join("\n\n", sections);

        var chunks = Chunker.Chunk(text, DocumentFormat.Markdown, size: 80, overlap: 10, TestContext.Current.CancellationToken);

        chunks.Should().HaveCountGreaterThan(3);
        chunks.Should().OnlyContain(c => Chunker.CountTokens(c) <= 80 + 12);
        chunks[0].Should().StartWith("## Section 1");
        // Each chunk after the first begins with the tail of the one before it.
        var tail = chunks[0][^20..].Trim();
        chunks[1].Should().Contain(tail.Split(' ')[^1]);
    }

    [Fact]
    public void Chunk_CancelledToken_StopsInsteadOfChunkingTheWholeText()
    {
        var text = string.Join("\n\n", Enumerable.Range(0, 2000).Select(i => $"Paragraph {i} with a few words."));
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();

        var act = () => Chunker.Chunk(text, DocumentFormat.Text, 64, 8, cancelled.Token);

        act.Should().Throw<OperationCanceledException>();
        Chunker.Chunk(text, DocumentFormat.Text, 64, 8, TestContext.Current.CancellationToken).Should().NotBeEmpty();
    }

    [Fact]
    public void Chunk_ShortParagraphs_PackedIntoOneChunk()
    {
        var chunks = Chunker.Chunk("First paragraph.\n\nSecond paragraph.\n\nThird.", DocumentFormat.Text, 256, 32, TestContext.Current.CancellationToken);
        chunks.Should().ContainSingle().Which.Should().Contain("First paragraph.").And.Contain("Third.");
    }

    [Theory]
    [InlineData("http://127.0.0.1:6334", "http://127.0.0.1:6334/", null)]
    [InlineData("Endpoint=http://qdrant:6334;Key=s3cret", "http://qdrant:6334/", "s3cret")]
    [InlineData("Endpoint=https://cluster.example:6334", "https://cluster.example:6334/", null)]
    public void QdrantConnection_Parse_AcceptsUrlAndAspireForms(string value, string endpoint, string? key)
    {
        var parsed = QdrantConnection.Parse(value)!;
        parsed.Endpoint.ToString().Should().Be(endpoint);
        parsed.ApiKey.Should().Be(key);
    }

    [Fact]
    public void QdrantConnection_Parse_NoEndpoint_ThrowsWithTheExpectedForm()
    {
        var act = () => QdrantConnection.Parse("Key=abc");
        act.Should().Throw<InvalidOperationException>().WithMessage("*Endpoint=http://host:6334*");
        QdrantConnection.Parse("").Should().BeNull();
    }

    [Fact]
    public async Task EmbeddedIndex_AfterRestart_KeepsPointsPayloadsAndDeletions()
    {
        var ct = TestContext.Current.CancellationToken;
        var root = new DataRoot(TestInfrastructure.TempDataFolder("embedded"));
        var options = Options.Create(new EmbeddedIndexOptions { ExactSearchThreshold = 10 });
        var first = new EmbeddedVectorIndex(root, options, NullLogger<EmbeddedVectorIndex>.Instance);
        await first.CreateCollectionAsync("docs", 3, VectorDistance.Cosine, ct);
        var points = Enumerable.Range(0, 50).Select(i => new IndexPoint(
            Guid.NewGuid().ToString(), new[] { 1f, i / 50f, (i % 3) / 3f },
            new PointPayload { Text = $"point {i}", DocumentId = $"doc{i}", Label = i % 2 == 0 ? "even" : "odd", Metadata = new() { ["n"] = JsonSerializer.SerializeToElement(i) } })).ToList();
        await first.UpsertAsync("docs", points, ct);
        await first.DeleteAsync("docs", [points[0].Id], ct);

        var second = new EmbeddedVectorIndex(root, options, NullLogger<EmbeddedVectorIndex>.Instance);
        (await second.CountAsync("docs", ct)).Should().Be(49);
        var hits = await second.QueryAsync("docs", new[] { 1f, 10 / 50f, 1 / 3f }, 3, null, withVectors: false, ct);
        hits[0].Payload.Text.Should().Be("point 10");
        hits.Should().NotContain(h => h.Id == points[0].Id);
        var filtered = await second.QueryAsync("docs", new[] { 1f, 10 / 50f, 1 / 3f }, 5, new Dictionary<string, string> { ["label"] = "odd", ["n"] = "11" }, false, ct);
        filtered.Should().ContainSingle().Which.Payload.Text.Should().Be("point 11");
    }

    [Fact]
    public async Task EmbeddedIndex_WrongDimensions_ThrowsDimensionMismatch()
    {
        var ct = TestContext.Current.CancellationToken;
        var index = new EmbeddedVectorIndex(new DataRoot(TestInfrastructure.TempDataFolder("embedded")), Options.Create(new EmbeddedIndexOptions()), NullLogger<EmbeddedVectorIndex>.Instance);
        await index.CreateCollectionAsync("c", 4, VectorDistance.Cosine, ct);
        var act = () => index.UpsertAsync("c", [new IndexPoint(Guid.NewGuid().ToString(), new float[3], new PointPayload { Text = "x", DocumentId = "d" })], ct);
        await act.Should().ThrowAsync<DimensionMismatchException>().WithMessage("*3-dimensional*4 dimensions*");
    }
}

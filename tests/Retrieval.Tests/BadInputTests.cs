using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using AspireTune.Retrieval.Ingestion;
using AspireTune.Retrieval.Search;

namespace AspireTune.Retrieval.Tests;

/// <summary>Regression tests for issue 12: input that used to cost minutes of CPU or a 500.</summary>
public sealed class BadInputTests
{
    // A request that is answered at all must be answered within this; before the fixes these took minutes.
    private static CancellationToken Within(int seconds)
    {
        var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        cts.CancelAfter(TimeSpan.FromSeconds(seconds));
        return cts.Token;
    }

    [Fact]
    public async Task Prompt_MegabyteInputWithoutSpaces_IsRefusedWithTheLimit()
    {
        await using var host = new RetrievalHost();
        var client = host.CreateClient();
        (await host.CreateCollectionAsync("dos")).StatusCode.Should().Be(HttpStatusCode.Created);
        var examples = await client.PostAsJsonAsync("/api/retrieval/collections/dos/examples", new { examples = new[] { new { input = "hello there", expected = "ham" } } }, TestContext.Current.CancellationToken);
        examples.StatusCode.Should().Be(HttpStatusCode.OK);

        var ct = Within(60);
        var response = await client.PostAsJsonAsync("/api/retrieval/collections/dos/prompt", new { input = new string('x', 1024 * 1024), k = 4 }, ct);

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        var body = await response.Content.ReadAsStringAsync(ct);
        body.Should().Contain("200,000").And.Contain("Retrieval:MaxQueryCharacters");
    }

    [Fact]
    public async Task Prompt_LongWordUnderTheLimit_IsBuiltWithinTheBudget()
    {
        await using var host = new RetrievalHost();
        var client = host.CreateClient();
        (await host.CreateCollectionAsync("dos")).StatusCode.Should().Be(HttpStatusCode.Created);
        await client.PostAsJsonAsync("/api/retrieval/collections/dos/examples", new { examples = new[] { new { input = "hello there", expected = "ham" } } }, TestContext.Current.CancellationToken);

        var ct = Within(60);
        var response = await client.PostAsJsonAsync("/api/retrieval/collections/dos/prompt", new { input = new string('y', 190_000), k = 4, tokenBudget = 1_000_000 }, ct);

        response.StatusCode.Should().Be(HttpStatusCode.OK, await response.Content.ReadAsStringAsync(ct));
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync(ct))!;
        body["tokens"]!.GetValue<int>().Should().BePositive();
    }

    [Fact]
    public async Task Ingest_OneMegabyteWord_IsChunkedInsteadOfHanging()
    {
        await using var host = new RetrievalHost();
        var client = host.CreateClient();
        (await host.CreateCollectionAsync("dos")).StatusCode.Should().Be(HttpStatusCode.Created);

        var ct = Within(90);
        var response = await client.PostAsJsonAsync("/api/retrieval/collections/dos/documents",
            new { documents = new[] { new { id = "word", text = new string('z', 1024 * 1024) } }, chunkTokens = 8192, chunkOverlapTokens = 0 }, ct);

        response.StatusCode.Should().Be(HttpStatusCode.OK, await response.Content.ReadAsStringAsync(ct));
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync(ct))!;
        body["chunks"]!.GetValue<int>().Should().BeGreaterThan(1);
    }

    [Fact]
    public void Chunker_RunLongerThanTheCap_IsCutIntoSegments()
    {
        var text = "short words " + new string('q', 3 * Chunker.MaxPreTokenChars) + " end";

        var segments = Chunker.Segments(text).Select(s => s.ToString()).ToList();

        string.Concat(segments).Should().Be(text);
        segments.Should().HaveCount(3);
        Chunker.Segments("ordinary text with spaces").Should().ContainSingle("text without long runs is tokenized exactly as cl100k does");
    }

    [Fact]
    public void Chunker_SurrogatePairsInALongRun_AreNeverSplit()
    {
        var text = string.Concat(Enumerable.Repeat("\U0001F600", Chunker.MaxPreTokenChars));

        var segments = Chunker.Segments(text).Select(s => s.ToString()).ToList();

        segments.Should().HaveCountGreaterThan(1);
        segments.Should().OnlyContain(s => !char.IsLowSurrogate(s[0]) && !char.IsHighSurrogate(s[s.Length - 1]));
    }

    [Fact]
    public void TextAnalyzer_LongRun_BecomesTokensOfAtMostTheCap()
    {
        var tokens = TextAnalyzer.Tokens("a " + new string('w', 200) + " b");

        tokens.Should().OnlyContain(t => t.Length <= TextAnalyzer.MaxTokenChars);
        string.Concat(tokens).Should().Be("a" + new string('w', 200) + "b");
    }

    [Fact]
    public async Task CreateCollection_DistanceAsInteger_Is400()
    {
        await using var host = new RetrievalHost();

        var response = await host.CreateClient().PostAsync("/api/retrieval/collections",
            new StringContent("""{"name":"ints","distance":7}""", System.Text.Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken);

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await host.CreateClient().GetAsync("/api/retrieval/collections/ints", TestContext.Current.CancellationToken)).StatusCode.Should().Be(HttpStatusCode.NotFound);
    }

    [Theory]
    [InlineData("documents", """{"documents":null}""")]
    [InlineData("examples", """{"examples":null}""")]
    public async Task Ingest_NullList_Is400(string path, string json)
    {
        await using var host = new RetrievalHost();
        var client = host.CreateClient();
        (await host.CreateCollectionAsync("nulls")).StatusCode.Should().Be(HttpStatusCode.Created);

        var response = await client.PostAsync($"/api/retrieval/collections/nulls/{path}", new StringContent(json, System.Text.Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken);

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest, await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
    }
}

using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Embeddings;

namespace AspireTune.Retrieval.Tests;

/// <summary><c>/v1/embeddings</c> through the official OpenAI .NET SDK, against what a collection indexes.</summary>
public sealed class EmbeddingsApiTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static EmbeddingClient Client(HttpClient http, string model) => new OpenAIClient(new ApiKeyCredential("not-needed-on-loopback"), new OpenAIClientOptions
    {
        Endpoint = new Uri(http.BaseAddress!, "v1"),
        Transport = new HttpClientPipelineTransport(http),
    }).GetEmbeddingClient(model);

    [Fact]
    public async Task Embeddings_OfficialSdk_EqualTheVectorsACollectionIndexes()
    {
        await using var host = new RetrievalHost();
        var http = host.CreateClient();
        (await host.CreateCollectionAsync("kb", new { embeddingModel = "local-hashing", dimensions = 256 })).StatusCode.Should().Be(HttpStatusCode.Created);
        var documents = new[] { "Queues deliver each command to one consumer.", "Events are published to every subscriber.", "Early stopping watches the validation loss." };
        var ingest = await http.PostAsJsonAsync("/api/retrieval/collections/kb/documents", new { documents = documents.Select((t, i) => new { id = $"d{i}", text = t }) }, Ct);
        ingest.StatusCode.Should().Be(HttpStatusCode.OK, await ingest.Content.ReadAsStringAsync(Ct));
        const string query = "which consumer gets a queued command?";
        var neighbors = JsonNode.Parse(await (await http.PostAsJsonAsync("/api/retrieval/collections/kb/neighbors", new { text = query, k = 3 }, Ct)).Content.ReadAsStringAsync(Ct))!["neighbors"]!.AsArray();
        var client = Client(http, "local-hashing");

        OpenAIEmbedding queryVector = await client.GenerateEmbeddingAsync(query, new EmbeddingGenerationOptions { Dimensions = 256 }, Ct);
        OpenAIEmbeddingCollection pointVectors = await client.GenerateEmbeddingsAsync(neighbors.Select(n => n!["text"]!.GetValue<string>()).ToList(), new EmbeddingGenerationOptions { Dimensions = 256 }, Ct);

        var q = queryVector.ToFloats().ToArray();
        q.Should().HaveCount(256);
        Math.Sqrt(q.Sum(x => (double)x * x)).Should().BeApproximately(1, 1e-5);
        neighbors.Should().HaveCount(3);
        for (var i = 0; i < neighbors.Count; i++)
        {
            var p = pointVectors[i].ToFloats().ToArray();
            var cosine = q.Zip(p, (a, b) => (double)a * b).Sum();
            neighbors[i]!["score"]!.GetValue<double>().Should().BeApproximately(cosine, 1e-5, "the indexed vector is the one /v1/embeddings returns for that text");
        }
        pointVectors.Select(e => e.Index).Should().Equal(0, 1, 2);
        pointVectors.Model.Should().Be("local-hashing");
        pointVectors.Usage.InputTokenCount.Should().BePositive();
    }

    [Fact]
    public async Task Embeddings_Base64AndDefaultDimensions_DecodeToTheFloatVectors()
    {
        await using var host = new RetrievalHost();
        var http = host.CreateClient();

        var floats = await Post(http, new { model = "local-hashing", input = new[] { "alpha beta", "gamma" } });
        var base64 = await Post(http, new { model = "local-hashing", input = new[] { "alpha beta", "gamma" }, encoding_format = "base64" });

        for (var i = 0; i < 2; i++)
        {
            var expected = floats.GetProperty("data")[i].GetProperty("embedding").EnumerateArray().Select(x => x.GetSingle()).ToArray();
            var decoded = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(Convert.FromBase64String(base64.GetProperty("data")[i].GetProperty("embedding").GetString()!)).ToArray();
            expected.Should().HaveCount(384, "Retrieval:DefaultDimensions");
            decoded.Should().Equal(expected);
        }
    }

    [Theory]
    [InlineData("""{"input":"x"}""", "model")]
    [InlineData("""{"model":"local-hashing","input":[1,2,3]}""", "input")]
    [InlineData("""{"model":"local-hashing","input":""}""", "input")]
    [InlineData("""{"model":"local-hashing","input":"x","encoding_format":"int8"}""", "encoding_format")]
    [InlineData("""{"model":"local-hashing","input":"x","dimensions":4}""", "dimensions")]
    [InlineData("""{"model":"text-embedding-3-small","input":"x"}""", "model")]
    public async Task Embeddings_BadRequest_AnswerTheOpenAiErrorNamingTheParameter(string body, string param)
    {
        await using var host = new RetrievalHost();
        var response = await host.CreateClient().PostAsync("/v1/embeddings", new StringContent(body, System.Text.Encoding.UTF8, "application/json"), Ct);
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("error");

        ((int)response.StatusCode).Should().BeOneOf(400, 404);
        error.GetProperty("param").GetString().Should().Be(param);
    }

    private static async Task<JsonElement> Post(HttpClient http, object body)
    {
        var response = await http.PostAsJsonAsync("/v1/embeddings", body, Ct);
        var json = await response.Content.ReadFromJsonAsync<JsonElement>(Ct);
        response.StatusCode.Should().Be(HttpStatusCode.OK, json.ToString());
        return json;
    }
}

using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace AspireTune.FineTuning.Tests;

/// <summary>
/// Streaming with n &gt; 1 on both completion endpoints, read as raw server-sent events (the official .NET SDK's
/// streaming updates carry no choice index, so it cannot tell n streamed choices apart).
/// </summary>
[Collection(TrainingCollection.Name)]
public sealed class StreamingChoicesTests(UntrainedModelFixture fixture) : IClassFixture<UntrainedModelFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private HttpClient Http => fixture.Http;

    private static object Messages => new[] { new { role = "user", content = "Write a word." } };

    [Fact]
    public async Task ChatStream_NTwoSeeded_StreamsBothChoicesEachAsTheNonStreamedRequestGivesIt()
    {
        var whole = await PostJsonAsync("/v1/chat/completions", new { model = "aspiretune-tiny", messages = Messages, n = 2, temperature = 1.0, max_tokens = 12, seed = 11 });
        var events = await StreamAsync("/v1/chat/completions",
            new { model = "aspiretune-tiny", messages = Messages, n = 2, temperature = 1.0, max_tokens = 12, seed = 11, stream = true, stream_options = new { include_usage = true } });

        var chunks = events.SkipLast(1).ToList();
        var usage = chunks[^1];
        var byChoice = chunks.SkipLast(1).Select(c => c.GetProperty("choices").EnumerateArray().Should().ContainSingle().Subject)
            .GroupBy(c => c.GetProperty("index").GetInt32()).ToDictionary(g => g.Key, g => g.ToList());
        byChoice.Keys.Should().BeEquivalentTo([0, 1]);
        var choices = whole.GetProperty("choices").EnumerateArray().ToList();
        foreach (var (index, pieces) in byChoice)
        {
            pieces[0].GetProperty("delta").GetProperty("role").GetString().Should().Be("assistant");
            pieces.SkipLast(1).Should().OnlyContain(p => p.GetProperty("finish_reason").ValueKind == JsonValueKind.Null, "a choice's finish_reason comes in its last chunk only");
            var text = string.Concat(pieces.Select(p => p.GetProperty("delta").TryGetProperty("content", out var c) ? c.GetString() : ""));
            text.Should().Be(choices[index].GetProperty("message").GetProperty("content").GetString(), $"choice {index} keeps its own seed");
            pieces[^1].GetProperty("finish_reason").GetString().Should().Be(choices[index].GetProperty("finish_reason").GetString());
        }
        choices[0].GetProperty("message").GetProperty("content").GetString().Should()
            .NotBe(choices[1].GetProperty("message").GetProperty("content").GetString(), "each choice has its own seed: two samples, so a choice streamed under the other's index would show");
        usage.GetProperty("choices").GetArrayLength().Should().Be(0);
        usage.GetProperty("usage").GetProperty("completion_tokens").GetInt32().Should().Be(whole.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        usage.GetProperty("usage").GetProperty("prompt_tokens").GetInt32().Should().Be(whole.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        events[^1].ValueKind.Should().Be(JsonValueKind.Undefined, "the stream ends with data: [DONE]");
    }

    [Fact]
    public async Task CompletionsStream_TwoPromptsNTwoSeeded_StreamsFourChoicesIndexedAsTheNonStreamedOnes()
    {
        var request = new Dictionary<string, object> { ["model"] = "aspiretune-tiny", ["prompt"] = new[] { "Once", "The" }, ["n"] = 2, ["temperature"] = 1.0, ["max_tokens"] = 10, ["seed"] = 3 };
        var whole = await PostJsonAsync("/v1/completions", request);
        var events = await StreamAsync("/v1/completions", new Dictionary<string, object>(request) { ["stream"] = true, ["stream_options"] = new { include_usage = true } });

        var chunks = events.SkipLast(1).ToList();
        var byChoice = chunks.SkipLast(1).Select(c => c.GetProperty("choices").EnumerateArray().Should().ContainSingle().Subject)
            .GroupBy(c => c.GetProperty("index").GetInt32()).ToDictionary(g => g.Key, g => g.ToList());
        var choices = whole.GetProperty("choices").EnumerateArray().ToList();
        byChoice.Keys.Should().BeEquivalentTo([0, 1, 2, 3]);
        foreach (var (index, pieces) in byChoice)
        {
            string.Concat(pieces.Select(p => p.GetProperty("text").GetString())).Should().Be(choices[index].GetProperty("text").GetString(), $"choice {index}");
            pieces.SkipLast(1).Should().OnlyContain(p => p.GetProperty("finish_reason").ValueKind == JsonValueKind.Null, "a choice's finish_reason comes in its last chunk only");
            pieces[^1].GetProperty("finish_reason").GetString().Should().Be(choices[index].GetProperty("finish_reason").GetString());
        }
        chunks[^1].GetProperty("choices").GetArrayLength().Should().Be(0);
        chunks[^1].GetProperty("usage").GetProperty("completion_tokens").GetInt32().Should().Be(whole.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        chunks[^1].GetProperty("usage").GetProperty("prompt_tokens").GetInt32().Should().Be(whole.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
    }

    [Fact]
    public async Task CompletionsStream_Logprobs_ChunksCarryTheLogprobsTheNonStreamedRequestGives()
    {
        var request = new Dictionary<string, object> { ["model"] = "aspiretune-tiny", ["prompt"] = "Once", ["n"] = 2, ["temperature"] = 1.0, ["max_tokens"] = 8, ["seed"] = 4, ["logprobs"] = 2 };
        var whole = await PostJsonAsync("/v1/completions", request);
        var events = await StreamAsync("/v1/completions", new Dictionary<string, object>(request) { ["stream"] = true });

        var byChoice = events.SkipLast(1).Select(c => c.GetProperty("choices").EnumerateArray().Single())
            .Where(c => c.GetProperty("finish_reason").ValueKind == JsonValueKind.Null)
            .GroupBy(c => c.GetProperty("index").GetInt32()).ToDictionary(g => g.Key, g => g.Select(c => c.GetProperty("logprobs")).ToList());
        foreach (var (index, pieces) in byChoice)
        {
            var expected = whole.GetProperty("choices")[index].GetProperty("logprobs");
            foreach (var field in new[] { "tokens", "text_offset" })
                pieces.SelectMany(p => p.GetProperty(field).EnumerateArray().Select(Value))
                    .Should().Equal(expected.GetProperty(field).EnumerateArray().Select(Value), $"choice {index}'s {field}");
            // Log-probabilities to float precision: the streamed and unstreamed choices are decoded in batches of other shapes.
            pieces.SelectMany(p => p.GetProperty("token_logprobs").EnumerateArray().Select(v => v.GetDouble()))
                .Should().Equal(expected.GetProperty("token_logprobs").EnumerateArray().Select(v => v.GetDouble()), (a, b) => Math.Abs(a - b) < 1e-4, $"choice {index}'s token_logprobs");
            // Keyed by token text: partial UTF-8 tokens all read as U+FFFD, so an entry may hold fewer than 2 (the likelier kept).
            pieces.SelectMany(p => p.GetProperty("top_logprobs").EnumerateArray()).Select(Top)
                .Should().Equal(expected.GetProperty("top_logprobs").EnumerateArray().Select(Top), SameTop, $"choice {index}'s top_logprobs");
        }
        byChoice.Keys.Should().BeEquivalentTo([0, 1]);
    }

    private static List<(string Token, double Logprob)> Top(JsonElement entry) => [.. entry.EnumerateObject().Select(p => (p.Name, p.Value.GetDouble()))];

    private static bool SameTop(List<(string Token, double Logprob)> a, List<(string Token, double Logprob)> b) =>
        a.Select(t => t.Token).SequenceEqual(b.Select(t => t.Token)) && a.Zip(b).All(p => Math.Abs(p.First.Logprob - p.Second.Logprob) < 1e-4);

    /// <summary>A string's value (the two paths may escape it differently), any other value's JSON.</summary>
    private static string Value(JsonElement v) => v.ValueKind == JsonValueKind.String ? v.GetString()! : v.GetRawText();

    [Theory]
    [InlineData("""{"stream":true,"n":2,"best_of":3}""", "best_of")]
    [InlineData("""{"stream":true,"echo":true}""", "echo")]
    public async Task CompletionsStream_Unsupported_Answers400NamingTheParameter(string extra, string param)
    {
        var request = System.Text.Json.Nodes.JsonNode.Parse(extra)!.AsObject();
        request["model"] = "aspiretune-tiny";
        request["prompt"] = "Once";
        var response = await Http.PostAsJsonAsync("/v1/completions", request, Ct);
        var error = (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error");

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        error.GetProperty("param").GetString().Should().Be(param);
    }

    private async Task<JsonElement> PostJsonAsync(string path, object body)
    {
        var response = await Http.PostAsJsonAsync(path, body, Ct);
        var json = await response.Content.ReadFromJsonAsync<JsonElement>(Ct);
        response.StatusCode.Should().Be(HttpStatusCode.OK, json.ToString());
        return json;
    }

    /// <summary>The stream's events in order, each <c>data:</c> line parsed; <c>[DONE]</c> as an undefined element.</summary>
    private async Task<List<JsonElement>> StreamAsync(string path, object body)
    {
        using var response = await Http.PostAsJsonAsync(path, body, Ct);
        response.StatusCode.Should().Be(HttpStatusCode.OK);
        response.Content.Headers.ContentType!.MediaType.Should().Be("text/event-stream");
        var text = Encoding.UTF8.GetString(await response.Content.ReadAsByteArrayAsync(Ct));
        var events = text.Split('\n').Where(l => l.StartsWith("data: ", StringComparison.Ordinal)).Select(l => l["data: ".Length..])
            .Select(d => d == "[DONE]" ? default : JsonDocument.Parse(d).RootElement.Clone()).ToList();
        events.Should().NotBeEmpty();
        events.Take(events.Count - 1).Should().NotContain(e => e.ValueKind == JsonValueKind.Undefined, "[DONE] comes last and once");
        return events;
    }
}

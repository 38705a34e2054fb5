using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using AspireTune.MockOpenAI;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.ChatCompletion;
using Microsoft.SemanticKernel.Connectors.OpenAI;

namespace AspireTune.Evaluation.Tests;

/// <summary>The test server itself must behave like an OpenAI API, or the other tests prove nothing.</summary>
public class MockOpenAITests
{
    [Fact]
    public async Task Chat_StreamingThroughSemanticKernel_ReassemblesReply()
    {
        await using var mock = await MockOpenAIServer.StartAsync(configure: o => o.Rules.Add(new MockRule { Pattern = "^weather in (\\w+)", Reply = "Sunny in $1 today" }));
        var chat = Kernel.CreateBuilder().AddOpenAIChatCompletion("m", new Uri(mock.BaseUrl), "unused").Build().GetRequiredService<IChatCompletionService>();
        var history = new ChatHistory();
        history.AddUserMessage("weather in Oslo?");

        var text = new StringBuilder();
        await foreach (var part in chat.GetStreamingChatMessageContentsAsync(history, new OpenAIPromptExecutionSettings()))
            text.Append(part.Content);

        text.ToString().Should().Be("Sunny in Oslo today");
    }

    [Fact]
    public async Task CompletionsEmbeddingsModels_AnswerInOpenAIShapes()
    {
        await using var mock = await MockOpenAIServer.StartAsync(configure: o => o.Models["small"] = new MockModelBehavior());
        using var http = new HttpClient();

        var completion = await (await http.PostAsJsonAsync(mock.BaseUrl + "/completions", new { model = "small", prompt = "echo me" })).Content.ReadFromJsonAsync<JsonElement>();
        var embeddings = await (await http.PostAsJsonAsync(mock.BaseUrl + "/embeddings", new { model = "small", input = new[] { "a b", "a b", "c" }, dimensions = 8 })).Content.ReadFromJsonAsync<JsonElement>();
        var models = await http.GetFromJsonAsync<JsonElement>(mock.BaseUrl + "/models");

        completion.GetProperty("choices")[0].GetProperty("text").GetString().Should().Be("echo me");
        completion.GetProperty("usage").GetProperty("completion_tokens").GetInt32().Should().Be(2);
        var vectors = embeddings.GetProperty("data").EnumerateArray().Select(d => d.GetProperty("embedding").EnumerateArray().Select(x => x.GetSingle()).ToArray()).ToList();
        vectors.Should().HaveCount(3);
        vectors[0].Should().HaveCount(8).And.Equal(vectors[1]);
        models.GetProperty("data")[0].GetProperty("id").GetString().Should().Be("small");
    }

    [Fact]
    public async Task Faults_WrongKeyAndInjectedStatus_AnsweredAsConfigured()
    {
        await using var mock = await MockOpenAIServer.StartAsync(configure: o => o.ApiKey = "right");
        using var http = new HttpClient();
        var body = new { model = "m", messages = new[] { new { role = "user", content = "hi" } } };

        var wrong = await http.SendAsync(new HttpRequestMessage(HttpMethod.Post, mock.BaseUrl + "/chat/completions") { Content = JsonContent.Create(body), Headers = { { "Authorization", "Bearer wrong" } } });
        var limited = await http.SendAsync(new HttpRequestMessage(HttpMethod.Post, mock.BaseUrl + "/chat/completions")
        {
            Content = JsonContent.Create(body),
            Headers = { { "Authorization", "Bearer right" }, { "X-Mock-Behavior", "status=429,retryafter=7" } },
        });

        wrong.StatusCode.Should().Be(HttpStatusCode.Unauthorized);
        limited.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        limited.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(7));
    }
}

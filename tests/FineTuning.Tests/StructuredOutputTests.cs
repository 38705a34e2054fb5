using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using NJsonSchema;
using OpenAI;
using OpenAI.Chat;

namespace AspireTune.FineTuning.Tests;

/// <summary>One host with the untrained built-in model (context 1024), shared by the structured-output tests.</summary>
public sealed class UntrainedModelFixture : IAsyncLifetime
{
    public FineTuningFactory Factory { get; } = new(new Dictionary<string, string?> { ["FineTuning:WorkerEnabled"] = "false", ["FineTuning:BuiltIn:Context"] = "1024" });
    public HttpClient Http { get; private set; } = null!;

    public ValueTask InitializeAsync()
    {
        Http = Factory.CreateClient();
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync() => await Factory.DisposeAsync();
}

/// <summary>
/// response_format, tools, n, best_of and logit_bias on the served models. The built-in model is random, so
/// at temperature 1 it writes noise: whatever parses and validates does so because of the grammar mask.
/// </summary>
[Collection(TrainingCollection.Name)]
public sealed class StructuredOutputTests(UntrainedModelFixture fixture) : IClassFixture<UntrainedModelFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private HttpClient Http => fixture.Http;

    /// <summary>Every value bounded (enums, maxLength, maxItems, integers of at most 15 digits), so an output always ends within max_tokens.</summary>
    private const string Schema = """
        {"type":"object","additionalProperties":false,
         "properties":{
           "label":{"type":"string","enum":["positive","negative","neutral"]},
           "confidence":{"type":"integer"},
           "flagged":{"type":"boolean"},
           "tags":{"type":"array","items":{"type":"string","maxLength":6},"maxItems":3},
           "note":{"type":["string","null"],"maxLength":6},
           "reason":{"anyOf":[{"type":"object","properties":{"code":{"type":"integer"}},"required":["code"],"additionalProperties":false},{"type":"null"}]}},
         "required":["label","confidence","flagged","tags","note","reason"]}
        """;

    private static object Messages => new[] { new { role = "user", content = "Classify: the soup was cold." } };

    [Fact]
    public async Task JsonSchema_HundredsOfSamplesAtTemperatureOne_AlwaysParseAndValidate()
    {
        var schema = await JsonSchema.FromJsonAsync(Schema, Ct);
        var outputs = new List<string>();
        for (var request = 0; request < 30; request++)
        {
            var response = await Http.PostAsJsonAsync("/v1/chat/completions", new
            {
                model = "aspiretune-tiny",
                messages = Messages,
                temperature = 1.0,
                max_tokens = 600,
                n = 10,
                seed = request * 100,
                response_format = new { type = "json_schema", json_schema = new { name = "sentiment", strict = true, schema = JsonNode.Parse(Schema) } },
            }, Ct);
            var body = await response.Content.ReadFromJsonAsync<JsonElement>(Ct);
            response.StatusCode.Should().Be(HttpStatusCode.OK, body.ToString());
            foreach (var choice in body.GetProperty("choices").EnumerateArray())
            {
                choice.GetProperty("finish_reason").GetString().Should().Be("stop", "the grammar ends every output before max_tokens");
                outputs.Add(choice.GetProperty("message").GetProperty("content").GetString()!);
            }
        }

        outputs.Should().HaveCount(300);
        foreach (var output in outputs)
        {
            var errors = schema.Validate(output);
            errors.Should().BeEmpty($"every sample validates: {output}");
        }
        outputs.Distinct().Count().Should().BeGreaterThan(250, "temperature 1 samples differ (the mask constrains, it does not decide)");
        outputs.Select(o => JsonDocument.Parse(o).RootElement.GetProperty("label").GetString()).Distinct().Should().HaveCount(3);
    }

    [Fact]
    public async Task GuidedChoice_SamplesAtTemperatureOne_AreAlwaysOneOfTheLabels_PrefixesIncluded()
    {
        // "Democratic" is a prefix of "Democratic-Republican": the model may stop after it or go on.
        string[] labels = ["Democratic", "Democratic-Republican", "Republican", "Whig"];
        var outputs = new List<string>();
        for (var request = 0; request < 8; request++)
        {
            var body = await PostAsync("/v1/chat/completions", new
            {
                model = "aspiretune-tiny", messages = Messages, temperature = 1.0, max_tokens = 64, n = 10, seed = request * 7, guided_choice = labels,
            });
            foreach (var choice in body.GetProperty("choices").EnumerateArray())
            {
                choice.GetProperty("finish_reason").GetString().Should().Be("stop", "the automaton ends every output on a label");
                outputs.Add(choice.GetProperty("message").GetProperty("content").GetString()!);
            }
        }

        outputs.Should().HaveCount(80).And.OnlyContain(o => labels.Contains(o), "the random model writes noise, the mask keeps it to a label");
        outputs.Distinct().Count().Should().BeGreaterThan(2, "the mask constrains, it does not decide");
    }

    [Theory]
    [InlineData("""{"guided_choice":[]}""", "guided_choice")]
    [InlineData("""{"guided_choice":"ham"}""", "guided_choice")]
    [InlineData("""{"guided_choice":["ham",""]}""", "guided_choice[1]")]
    [InlineData("""{"guided_choice":["ham","ham"]}""", "guided_choice[1]")]
    [InlineData("""{"guided_choice":["ham","spam"],"response_format":{"type":"json_object"}}""", "guided_choice")]
    public async Task GuidedChoice_Malformed_Answers400NamingTheParameter(string extra, string param)
    {
        var request = JsonNode.Parse(extra)!.AsObject();
        request["model"] = "aspiretune-tiny";
        request["messages"] = JsonSerializer.SerializeToNode(Messages);
        var response = await Http.PostAsJsonAsync("/v1/chat/completions", request, Ct);
        var error = (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error");

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        error.GetProperty("param").GetString().Should().Be(param);
    }

    [Fact]
    public async Task JsonObject_OfficialSdk_ReturnsAnObject()
    {
        var client = Client().GetChatClient("aspiretune-tiny");

        ChatCompletion completion = await client.CompleteChatAsync([new UserChatMessage("Answer in JSON.")], new ChatCompletionOptions
        {
            ResponseFormat = ChatResponseFormat.CreateJsonObjectFormat(), Temperature = 1, MaxOutputTokenCount = 900, Seed = 3,
        }, Ct);
        ChatCompletion schemaCompletion = await client.CompleteChatAsync([new UserChatMessage("Classify.")], new ChatCompletionOptions
        {
            ResponseFormat = ChatResponseFormat.CreateJsonSchemaFormat("sentiment", BinaryData.FromString(Schema), jsonSchemaIsStrict: true), Temperature = 1, MaxOutputTokenCount = 600,
        }, Ct);

        if (completion.FinishReason == ChatFinishReason.Stop)
            JsonDocument.Parse(completion.Content[0].Text).RootElement.ValueKind.Should().Be(JsonValueKind.Object);
        else
            completion.Content[0].Text.Should().StartWith("{", "a free-form object may run out of tokens, but it is an object from its first byte");
        (await JsonSchema.FromJsonAsync(Schema, Ct)).Validate(schemaCompletion.Content[0].Text).Should().BeEmpty();
    }

    [Fact]
    public async Task Tools_RequiredAndNamedFunction_OfficialSdkParsesValidToolCalls()
    {
        var client = Client().GetChatClient("aspiretune-tiny");
        const string weather = """{"type":"object","properties":{"city":{"type":"string","maxLength":8},"unit":{"enum":["c","f"]}},"required":["city","unit"],"additionalProperties":false}""";
        var tools = new[]
        {
            ChatTool.CreateFunctionTool("get_weather", "Current weather", BinaryData.FromString(weather), functionSchemaIsStrict: true),
            ChatTool.CreateFunctionTool("get_time", "Current time", BinaryData.FromString("""{"type":"object","properties":{},"additionalProperties":false}""")),
        };
        var required = new ChatCompletionOptions { ToolChoice = ChatToolChoice.CreateRequiredChoice(), Temperature = 1, MaxOutputTokenCount = 200 };
        var named = new ChatCompletionOptions { ToolChoice = ChatToolChoice.CreateFunctionChoice("get_weather"), Temperature = 1, MaxOutputTokenCount = 200 };
        foreach (var tool in tools)
        {
            required.Tools.Add(tool);
            named.Tools.Add(tool);
        }

        var calls = new List<ChatToolCall>();
        for (var i = 0; i < 10; i++)
        {
            ChatCompletion completion = await client.CompleteChatAsync([new UserChatMessage("Weather in Oslo?")], i % 2 == 0 ? required : named, Ct);
            completion.FinishReason.Should().Be(ChatFinishReason.ToolCalls);
            completion.Content.Should().BeEmpty();
            calls.Add(completion.ToolCalls.Should().ContainSingle().Subject);
        }
        // The call and its result go back as history; the answer after it is free text.
        var history = new List<ChatMessage> { new UserChatMessage("Weather in Oslo?"), new AssistantChatMessage([calls[1]]), new ToolChatMessage(calls[1].Id, "{\"temp\":3}") };
        ChatCompletion after = await client.CompleteChatAsync(history, new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 5 }, Ct);

        var weatherSchema = await JsonSchema.FromJsonAsync(weather, Ct);
        calls.Where((_, i) => i % 2 == 1).Should().OnlyContain(c => c.FunctionName == "get_weather");
        foreach (var call in calls)
        {
            call.Id.Should().StartWith("call_");
            if (call.FunctionName == "get_weather")
                weatherSchema.Validate(call.FunctionArguments.ToString()).Should().BeEmpty(call.FunctionArguments.ToString());
            else
                call.FunctionArguments.ToString().Should().Be("{}");
        }
        after.FinishReason.Should().BeOneOf(ChatFinishReason.Stop, ChatFinishReason.Length);
    }

    [Fact]
    public async Task NAndLogitBias_ChatAndCompletions_AnswerNChoicesWithTheBiasApplied()
    {
        var chat = await PostAsync("/v1/chat/completions", new { model = "aspiretune-tiny", messages = Messages, n = 3, temperature = 1.0, max_tokens = 8, seed = 5, logit_bias = new Dictionary<string, int> { ["65"] = 100 } });
        var completions = await PostAsync("/v1/completions", new { model = "aspiretune-tiny", prompt = new[] { "one", "two" }, n = 2, temperature = 1.0, max_tokens = 6 });
        var banned = await PostAsync("/v1/completions", new { model = "aspiretune-tiny", prompt = "x", temperature = 0, max_tokens = 6, logit_bias = Enumerable.Range(0, 257).Where(b => b != 'z').ToDictionary(b => b.ToString(), _ => -100) });

        chat.GetProperty("choices").EnumerateArray().Select(c => c.GetProperty("index").GetInt32()).Should().Equal(0, 1, 2);
        chat.GetProperty("choices").EnumerateArray().Should().OnlyContain(c => c.GetProperty("message").GetProperty("content").GetString() == "AAAAAAAA", "+100 on token 'A' (byte 65) wins every draw");
        chat.GetProperty("usage").GetProperty("completion_tokens").GetInt32().Should().Be(24);
        completions.GetProperty("choices").EnumerateArray().Select(c => c.GetProperty("index").GetInt32()).Should().Equal(0, 1, 2, 3);
        banned.GetProperty("choices")[0].GetProperty("text").GetString().Should().Be("zzzzzz", "every other token, end-of-text included, is banned");
    }

    [Fact]
    public async Task BestOf_Completions_ReturnsTheNBestOfTheCandidatesAndCountsThemAll()
    {
        var body = await PostAsync("/v1/completions", new { model = "aspiretune-tiny", prompt = "abc", n = 2, best_of = 5, temperature = 1.0, max_tokens = 4, logprobs = 0, seed = 11 });
        var all = await PostAsync("/v1/completions", new { model = "aspiretune-tiny", prompt = "abc", n = 5, temperature = 1.0, max_tokens = 4, logprobs = 0, seed = 11 });

        static double Mean(JsonElement choice) => choice.GetProperty("logprobs").GetProperty("token_logprobs").EnumerateArray().Average(l => l.GetDouble());
        var best = body.GetProperty("choices").EnumerateArray().Select(Mean).ToList();
        var candidates = all.GetProperty("choices").EnumerateArray().Select(Mean).OrderDescending().ToList();
        best.Should().HaveCount(2);
        best.OrderDescending().Should().Equal(candidates.Take(2), "the same seeds give the same five candidates; best_of keeps the two with the highest mean logprob");
        body.GetProperty("usage").GetProperty("completion_tokens").GetInt32().Should().Be(all.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Theory]
    [InlineData("""{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"a":{"type":"string","pattern":"^a"}}}}}""", "response_format.json_schema.schema.properties.a.pattern")]
    [InlineData("""{"type":"xml"}""", "response_format.type")]
    [InlineData("""{"type":"json_schema"}""", "response_format.json_schema")]
    public async Task ResponseFormat_Unsupported_Answers400NamingTheParameter(string format, string param)
    {
        var response = await Http.PostAsJsonAsync("/v1/chat/completions", new { model = "aspiretune-tiny", messages = Messages, response_format = JsonNode.Parse(format) }, Ct);
        var error = (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error");

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        error.GetProperty("param").GetString().Should().Be(param);
    }

    [Theory]
    [InlineData("""{"tool_choice":"required"}""", "tool_choice")]
    [InlineData("""{"logit_bias":{"99999":5}}""", "logit_bias")]
    [InlineData("""{"logit_bias":{"1":500}}""", "logit_bias")]
    [InlineData("""{"tools":[{"type":"retrieval"}]}""", "tools[0]")]
    public async Task ChatParameters_Unsupported_Answer400NamingTheParameter(string extra, string param)
    {
        var request = JsonNode.Parse(extra)!.AsObject();
        request["model"] = "aspiretune-tiny";
        request["messages"] = JsonSerializer.SerializeToNode(Messages);
        var response = await Http.PostAsJsonAsync("/v1/chat/completions", request, Ct);
        var error = (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error");

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        error.GetProperty("param").GetString().Should().Be(param);
    }

    private OpenAIClient Client() => new(new ApiKeyCredential("not-needed-on-loopback"), new OpenAIClientOptions
    {
        Endpoint = new Uri(Http.BaseAddress!, "v1"),
        Transport = new HttpClientPipelineTransport(Http),
    });

    private async Task<JsonElement> PostAsync(string path, object body)
    {
        var response = await Http.PostAsJsonAsync(path, body, Ct);
        var json = await response.Content.ReadFromJsonAsync<JsonElement>(Ct);
        response.StatusCode.Should().Be(HttpStatusCode.OK, json.ToString());
        return json;
    }
}

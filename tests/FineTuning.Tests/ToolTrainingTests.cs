using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AspireTune.Engine.Tokenization;
using AspireTune.FineTuning.Curation;
using AspireTune.FineTuning.Serving;

namespace AspireTune.FineTuning.Tests;

/// <summary>
/// Function-calling training data in the hosted chat format (<c>tools</c>, assistant <c>tool_calls</c>, <c>tool</c>
/// turns with <c>tool_call_id</c>, <c>weight</c>): read with errors that name the field, kept through curation, and
/// rendered by the built-in or the checkpoint's template the way serving renders the same conversation.
/// </summary>
[Collection(TrainingCollection.Name)]
public sealed class ToolTrainingTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static readonly object WeatherTool = new
    {
        type = "function",
        function = new { name = "get_weather", description = "Weather now", parameters = new { type = "object", properties = new { city = new { type = "string" } }, required = new[] { "city" } } },
    };

    private static object Call(string id, string city) => new { id, type = "function", function = new { name = "get_weather", arguments = JsonSerializer.Serialize(new { city }) } };

    /// <summary>A user asks, the assistant calls the tool (the answer to learn).</summary>
    private static string CallLine(string city, int i) => JsonSerializer.Serialize(new
    {
        messages = new object[] { new { role = "user", content = $"w {city}?" }, new { role = "assistant", tool_calls = new[] { Call($"c{i}", city) } } },
        tools = new[] { WeatherTool },
    });

    /// <summary>A call, its result, and the assistant's answer from it (the answer to learn).</summary>
    private static string ResultLine(string city, int i) => JsonSerializer.Serialize(new
    {
        messages = new object[]
        {
            new { role = "user", content = $"w {city}?" },
            new { role = "assistant", content = (string?)null, tool_calls = new[] { Call($"c{i}", city) }, weight = 0 },
            new { role = "tool", tool_call_id = $"c{i}", content = "rain" },
            new { role = "assistant", content = "wet", weight = 1 },
        },
        tools = new[] { WeatherTool },
    });

    [Fact]
    public void Parse_FunctionCallingLines_KeepsToolsCallsAndResultsThroughCuration()
    {
        var parsed = JsonlDataset.Parse(TestData.Jsonl([CallLine("Oslo", 1), ResultLine("Rome", 2)]));
        var again = JsonlDataset.Parse(JsonlDataset.Write(parsed.Examples));

        parsed.IsValid.Should().BeTrue(parsed.Summary());
        var call = parsed.Examples[0];
        call.Tools.Should().ContainSingle().Which["function"]!["name"]!.GetValue<string>().Should().Be("get_weather");
        call.AnswerTurn.ToolCalls.Should().Equal(new ToolCall("c1", "get_weather", """{"city":"Oslo"}"""));
        call.Answer.Should().Be("""<tool_call>{"name":"get_weather","arguments":{"city":"Oslo"}}""");
        var result = parsed.Examples[1];
        result.Prompt.Select(m => (m.Role, m.ToolCallId)).Should().Equal(("user", null), ("assistant", null), ("tool", "c2"));
        result.Answer.Should().Be("wet");
        again.IsValid.Should().BeTrue(again.Summary());
        again.Examples.Select(e => e.FullText).Should().Equal(parsed.Examples.Select(e => e.FullText), "the curated file the trainer reads holds the same conversations");
        again.Examples.Select(e => e.Tools!.Single().ToJsonString()).Should().Equal(parsed.Examples.Select(e => e.Tools!.Single().ToJsonString()));
    }

    [Theory]
    [InlineData("""{"messages":[{"role":"user","content":"w?"},{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"get_time","arguments":"{}"}}]}],"tools":[TOOL]}""", "calls 'get_time', which \"tools\" does not list")]
    [InlineData("""{"messages":[{"role":"user","content":"w?"},{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"get_weather","arguments":"{}"}}]}]}""", "the line has no \"tools\"")]
    [InlineData("""{"messages":[{"role":"user","content":"w?"},{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"get_weather","arguments":"[1]"}}]}],"tools":[TOOL]}""", "messages[1].tool_calls[0].function.arguments is not a JSON object")]
    [InlineData("""{"messages":[{"role":"user","content":"w?"},{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"get_weather","arguments":"{}"}}]}],"tools":[TOOL]}""", "messages[1].tool_calls[0].id is missing")]
    [InlineData("""{"messages":[{"role":"user","content":"w?"},{"role":"tool","content":"rain"},{"role":"assistant","content":"wet"}],"tools":[TOOL]}""", "messages[1].tool_call_id is missing")]
    [InlineData("""{"messages":[{"role":"user","content":"w?"},{"role":"tool","tool_call_id":"zz","content":"rain"},{"role":"assistant","content":"wet"}],"tools":[TOOL]}""", "'zz' answers no earlier tool call")]
    [InlineData("""{"messages":[{"role":"user","content":"w?"},{"role":"assistant","function_call":{"name":"get_weather","arguments":"{}"}}]}""", "legacy function_call format")]
    [InlineData("""{"messages":[{"role":"user","content":"w?"},{"role":"assistant","content":"wet","weight":2}]}""", "messages[1].weight must be 0 or 1")]
    [InlineData("""{"messages":[{"role":"user","content":"w?","weight":1},{"role":"assistant","content":"wet"}]}""", "messages[0].weight is only for assistant turns")]
    [InlineData("""{"messages":[{"role":"user","content":"w?"},{"role":"assistant","content":"wet","weight":0}]}""", "every assistant turn has weight 0: the line has nothing to learn")]
    [InlineData("""{"messages":[{"role":"user","content":"w?"},{"role":"assistant","content":"wet"}],"tools":{"type":"function"}}""", "\"tools\" must be an array")]
    [InlineData("""{"messages":[{"role":"user","content":"w?"},{"role":"assistant","content":"wet"}],"tools":[TOOL,TOOL]}""", "tools[1]: the function 'get_weather' is listed twice")]
    public void Parse_BadFunctionCallingLine_NamesLineAndField(string line, string expected)
    {
        var parsed = JsonlDataset.Parse(Encoding.UTF8.GetBytes(line.Replace("TOOL", JsonSerializer.Serialize(WeatherTool)) + "\n"));

        parsed.IsValid.Should().BeFalse();
        parsed.Errors.Should().ContainSingle().Which.ToString().Should().StartWith("line 1: ").And.Contain(expected);
    }

    [Fact]
    public void Render_FunctionCallingExamples_BuiltInAndQwenTemplatesWriteTheCallsAsServingDoes()
    {
        var examples = JsonlDataset.Parse(TestData.Jsonl([CallLine("Oslo", 1), ResultLine("Rome", 2)])).Examples;
        var qwen = ChatTemplate.FromJinja(ChatTemplateTests.Qwen25, "", "<|im_end|>");

        var (builtInPrompt, builtInAnswer) = ChatTemplate.BuiltIn.Render(examples[0]);
        var (qwenPrompt, qwenAnswer) = qwen.Render(examples[0]);
        var (_, qwenAfterResult) = qwen.Render(examples[1]);
        var servedPrompt = qwen.RenderPrompt(examples[0].Prompt, examples[0].Tools);

        builtInPrompt.Should().StartWith("<|tools|>\n[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"").And.EndWith("<|user|>\nw Oslo?\n<|assistant|>\n");
        builtInAnswer.Should().Be("""<tool_call>{"name":"get_weather","arguments":{"city":"Oslo"}}""", "what constrained decoding writes for a call");
        qwenPrompt.Should().Be(servedPrompt, "training conditions on what serving sends for the same conversation and tools");
        qwenPrompt.Should().Contain("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\"");
        qwenAnswer.Should().Be("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call><|im_end|>\n", "the model's own call format, from its template");
        qwenAfterResult.Should().Be("wet<|im_end|>\n");
        qwen.RenderPrompt(examples[1].Prompt, examples[1].Tools).Should().EndWith(
            "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n</tool_call><|im_end|>\n"
            + "<|im_start|>user\n<tool_response>\nrain\n</tool_response><|im_end|>\n<|im_start|>assistant\n");
    }

    /// <summary>Short enough for gpt2-tiny's 64 positions: a tag per turn, a call as its name and arguments (the line break as an expression: trim_blocks drops one after a block tag).</summary>
    private const string CallTemplate = "{% for m in messages %}{{ '#' + m.role[0] + ' ' }}{% if m.tool_calls %}{% for c in m.tool_calls %}{{ c.function.name + ' ' + c.function.arguments|tojson }}{% endfor %}"
        + "{% else %}{{ m.content }}{% endif %}{{ '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '#a ' }}{% endif %}";

    [Fact]
    public async Task ImportedCheckpoint_FunctionCallingJob_TrainsAndServesCallsInItsTemplate()
    {
        await using var factory = new FineTuningFactory();
        var http = factory.CreateClient();
        var target = await ChatTemplateServingTests.ImportTemplatedAsync(factory, http, "caller", CallTemplate);
        string[] cities = ["Oslo", "Rome", "Lima", "Kyiv", "Baku", "Doha", "Riga", "Bern", "Rabat", "Quito", "Hanoi", "Accra"];
        var lines = cities.Select((c, i) => CallLine(c, i)).ToList();

        var job = await ChatTemplateServingTests.TrainOneEpochAsync(http, "caller", lines);
        var history = new object[]
        {
            new { role = "user", content = "w Oslo?" },
            new { role = "assistant", content = (string?)null, tool_calls = new[] { Call("c9", "Oslo") } },
            new { role = "tool", tool_call_id = "c9", content = "rain" },
        };
        var tokenized = await (await http.PostAsJsonAsync("/v1/tokenize", new { model = "caller", messages = history }, Ct)).Content.ReadFromJsonAsync<JsonElement>(Ct);

        var tokenizer = ByteLevelBpeTokenizer.TryLoad(target)!;
        job.GetProperty("status").GetString().Should().Be("succeeded", job.ToString());
        // Each example once: "#u w <city>?\n#a " then its call as the template writes it, "\n", and the end-of-text token.
        var expected = cities.Sum(c => tokenizer.Encode($"#u w {c}?\n#a ").Count + tokenizer.Encode($"get_weather {{\"city\": \"{c}\"}}\n").Count + 1);
        job.GetProperty("trained_tokens").GetInt64().Should().Be(expected, "training rendered every call with the checkpoint's template");
        tokenized.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()).Should().Equal(
            tokenizer.Encode("#u w Oslo?\n#a get_weather {\"city\": \"Oslo\"}\n#t rain\n#a "), "serving passes a request's past calls and results to the template as calls");
    }
}

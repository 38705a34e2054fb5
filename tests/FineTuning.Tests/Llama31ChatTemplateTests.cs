using System.Text.Json.Nodes;
using AspireTune.FineTuning.Curation;
using AspireTune.FineTuning.Serving;
using AspireTune.FineTuning.Serving.Templates;
using AspireTune.FineTuning.Tests.Engine;

namespace AspireTune.FineTuning.Tests;

/// <summary>
/// The chat template of meta-llama/Llama-3.1-8B-Instruct (Fixtures/chat-templates, as its tokenizer_config.json holds
/// it): the longest of the templates users bring (tool blocks, slices, filters with arguments, tests, tuple loops),
/// rendered by the Jinja subset to the text transformers' apply_chat_template gives.
/// </summary>
public sealed class Llama31ChatTemplateTests
{
    private const string Bos = "<|begin_of_text|>";
    private const string Header = "<|start_header_id|>system<|end_header_id|>\n\n";
    private const string Dates = "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n";
    private static readonly string Source = File.ReadAllText(EngineFixtures.Path_(Path.Combine("chat-templates", "llama-3.1-instruct.jinja")));

    private static Dictionary<string, object?> Variables(bool generationPrompt, params object?[] messages) => new()
    {
        ["messages"] = messages.ToList(),
        ["add_generation_prompt"] = generationPrompt,
        ["bos_token"] = Bos,
        ["eos_token"] = "<|eot_id|>",
    };

    private static Dictionary<string, object?> Message(string role, object? content) => new() { ["role"] = role, ["content"] = content };

    [Fact]
    public void Render_SystemAndUser_MatchesTransformers()
    {
        var text = JinjaTemplate.Parse(Source).Render(Variables(true, Message("system", "You are terse. "), Message("user", " Hi")));

        text.Should().Be(Bos + Header + Dates + "You are terse.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            + "<|start_header_id|>assistant<|end_header_id|>\n\n");
    }

    [Fact]
    public void Render_WithoutSystemMessage_KeepsTheDatedSystemBlock()
    {
        var text = JinjaTemplate.Parse(Source).Render(Variables(false, Message("user", "Hi"), Message("assistant", "Hello!")));

        text.Should().Be(Bos + Header + Dates + "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            + "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>");
    }

    [Fact]
    public void Render_WithTools_PutsThemIndentedInTheFirstUserTurn()
    {
        var variables = Variables(true, Message("system", "Be brief."), Message("user", "Weather in Oslo?"));
        variables["tools"] = new List<object?> { JinjaValues.FromJson(JsonNode.Parse("""{"type":"function","function":{"name":"get_weather","description":"Weather, now","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}""")) };

        var text = JinjaTemplate.Parse(Source).Render(variables);

        // json.dumps(indent=4): newlines and four spaces per level, "," between items, ": " after keys.
        const string tool = "{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"get_weather\",\n        \"description\": \"Weather, now\",\n"
            + "        \"parameters\": {\n            \"type\": \"object\",\n            \"properties\": {\n                \"city\": {\n                    \"type\": \"string\"\n"
            + "                }\n            },\n            \"required\": [\n                \"city\"\n            ]\n        }\n    }\n}";
        text.Should().Be(Bos + Header + "Environment: ipython\n" + Dates + "Be brief.<|eot_id|>"
            + "<|start_header_id|>user<|end_header_id|>\n\nGiven the following functions, please respond with a JSON for a function call "
            + "with its proper arguments that best answers the given prompt.\n\n"
            + "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}.Do not use variables.\n\n"
            + tool + "\n\nWeather in Oslo?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
    }

    [Fact]
    public void Render_ToolCallAndToolResult_AsTransformersRendersThem()
    {
        var call = new Dictionary<string, object?>
        {
            ["role"] = "assistant", ["content"] = "",
            ["tool_calls"] = new List<object?> { new Dictionary<string, object?> { ["function"] = new Dictionary<string, object?> { ["name"] = "get_weather", ["arguments"] = new Dictionary<string, object?> { ["city"] = "Oslo" } } } },
        };
        var twoCalls = new Dictionary<string, object?>(call) { ["tool_calls"] = new List<object?> { ((List<object?>)call["tool_calls"]!)[0], ((List<object?>)call["tool_calls"]!)[0] } };
        var template = JinjaTemplate.Parse(Source);

        var text = template.Render(Variables(false, Message("user", "Weather?"), call, Message("tool", "rain")));
        var refused = () => template.Render(Variables(false, Message("user", "Weather?"), twoCalls));

        // A string is iterable to Jinja, so the template writes a tool's text result as a JSON string.
        text.Should().EndWith("<|start_header_id|>user<|end_header_id|>\n\nWeather?<|eot_id|>"
            + "<|start_header_id|>assistant<|end_header_id|>\n\n{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}<|eot_id|>"
            + "<|start_header_id|>ipython<|end_header_id|>\n\n\"rain\"<|eot_id|>");
        refused.Should().Throw<TemplateException>().WithMessage("*only supports single tool-calls*");
    }

    [Fact]
    public void Render_TrainingExample_TrainsOnTheAnswerAndItsEndOfTurn()
    {
        var template = ChatTemplate.FromJinja(Source, Bos, "<|eot_id|>");
        var example = new TrainingExample(1, [new ChatMessage("system", "Be brief."), new ChatMessage("user", "Hi"), new ChatMessage("assistant", "Hello!")]);

        var (prompt, answer) = template.Render(example);

        answer.Should().Be("Hello!", "the answer, less the end-of-turn token that training appends as end of text");
        prompt.Should().Be(Header + Dates + "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            "the tokenizer prepends its own beginning-of-text token");
    }
}

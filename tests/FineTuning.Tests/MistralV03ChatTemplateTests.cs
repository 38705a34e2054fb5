using System.Text.Json.Nodes;
using AspireTune.FineTuning.Curation;
using AspireTune.FineTuning.Serving;
using AspireTune.FineTuning.Serving.Templates;
using AspireTune.FineTuning.Tests.Engine;

namespace AspireTune.FineTuning.Tests;

/// <summary>
/// The chat template of mistralai/Mistral-7B-Instruct-v0.3 (Fixtures/chat-templates, as its tokenizer_config.json
/// holds it): namespaces, selectattr, dict equality, <c>items()</c> with a loop filter, string slices, the system
/// message folded into the last user turn and 9-character tool call ids, rendered as transformers renders them.
/// </summary>
public sealed class MistralV03ChatTemplateTests
{
    private static readonly string Source = File.ReadAllText(EngineFixtures.Path_(Path.Combine("chat-templates", "mistral-7b-instruct-v0.3.jinja")));

    private static Dictionary<string, object?> Variables(params object?[] messages) => new()
    {
        ["messages"] = messages.ToList(),
        ["add_generation_prompt"] = true,
        ["bos_token"] = "<s>",
        ["eos_token"] = "</s>",
    };

    private static Dictionary<string, object?> Message(string role, object? content) => new() { ["role"] = role, ["content"] = content };

    private static Dictionary<string, object?> Call(string id) => new()
    {
        ["role"] = "assistant", ["content"] = "",
        ["tool_calls"] = new List<object?> { new Dictionary<string, object?> { ["id"] = id, ["function"] = new Dictionary<string, object?> { ["name"] = "get_weather", ["arguments"] = new Dictionary<string, object?> { ["city"] = "Oslo" } } } },
    };

    [Fact]
    public void Render_SystemMessage_GoesIntoTheLastUserTurn()
    {
        var text = JinjaTemplate.Parse(Source).Render(Variables(Message("system", "Be brief."), Message("user", "Hi"), Message("assistant", " Hello! "), Message("user", "Bye")));

        text.Should().Be("<s>[INST] Hi[/INST] Hello!</s>[INST] Be brief.\n\nBye[/INST]");
    }

    [Fact]
    public void Render_WithTools_ListsThemBeforeTheLastUserTurn()
    {
        var variables = Variables(Message("user", "Hi"), Message("assistant", "Hello!"), Message("user", "Weather in Oslo?"));
        variables["tools"] = new List<object?> { JinjaValues.FromJson(JsonNode.Parse("""{"type":"function","function":{"name":"get_weather","description":"Weather, now","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}""")) };

        var text = JinjaTemplate.Parse(Source).Render(variables);

        text.Should().Be("<s>[INST] Hi[/INST] Hello!</s>[AVAILABLE_TOOLS] [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Weather, now\", "
            + "\"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}}][/AVAILABLE_TOOLS][INST] Weather in Oslo?[/INST]");
    }

    [Fact]
    public void Render_ToolCallAndResult_CarryTheNineCharacterId()
    {
        var template = JinjaTemplate.Parse(Source);
        var result = Message("tool", "rain");
        result["tool_call_id"] = "abc123xyz";

        var text = template.Render(Variables(Message("user", "Weather?"), Call("abc123xyz"), result, Message("assistant", "Rain.")));
        var shortId = () => template.Render(Variables(Message("user", "Weather?"), Call("abc")));
        var notAlternating = () => template.Render(Variables(Message("user", "Hi"), Message("user", "Again")));

        text.Should().Be("<s>[INST] Weather?[/INST][TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}, \"id\": \"abc123xyz\"}]</s>"
            + "[TOOL_RESULTS] {\"content\": rain, \"call_id\": \"abc123xyz\"}[/TOOL_RESULTS] Rain.</s>");
        shortId.Should().Throw<TemplateException>().WithMessage("*length 9*");
        notAlternating.Should().Throw<TemplateException>().WithMessage("*must alternate*");
    }

    [Fact]
    public void Render_TrainingExample_TrainsOnTheAnswerAfterTheInstruction()
    {
        var template = ChatTemplate.FromJinja(Source, "<s>", "</s>");
        var example = new TrainingExample(1, [new ChatMessage("system", "Be brief."), new ChatMessage("user", "Hi"), new ChatMessage("assistant", "Hello!")]);

        var (prompt, answer) = template.Render(example);

        prompt.Should().Be("[INST] Be brief.\n\nHi[/INST]", "the tokenizer prepends its own <s>");
        answer.Should().Be(" Hello!", "the answer as the template writes it, less the </s> that training appends");
    }
}

using System.Net.Http.Json;
using System.Text.Json;
using AspireTune.FineTuning.Serving;
using AspireTune.FineTuning.Tests.Engine;

namespace AspireTune.FineTuning.Tests;

/// <summary>
/// Function calls are written in the form a model's chat template shows them (read off the template by rendering a
/// probe call), so a checkpoint answers with calls as it was trained to write them, and its output is read back the same way.
/// </summary>
[Collection(TrainingCollection.Name)]
public sealed class ToolCallFormatTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static string Fixture(string name) => File.ReadAllText(EngineFixtures.Path_(Path.Combine("chat-templates", name)));

    [Fact]
    public void CallFormat_RealTemplates_AreReadOffTheTemplate()
    {
        ChatTemplate.FromJinja(ChatTemplateTests.Qwen25, "", "<|im_end|>").CallFormat.Should().Be(new ToolCallFormat("<tool_call>\n", "name", "arguments"));
        ChatTemplate.FromJinja(Fixture("llama-3.1-instruct.jinja"), "<|begin_of_text|>", "<|eot_id|>").CallFormat.Should().Be(new ToolCallFormat("", "name", "parameters"));
        ChatTemplate.FromJinja(Fixture("mistral-7b-instruct-v0.3.jinja"), "<s>", "</s>").CallFormat.Should().Be(new ToolCallFormat("[TOOL_CALLS] [", "name", "arguments"));
        ChatTemplate.BuiltIn.CallFormat.Should().Be(ToolCallFormat.BuiltIn);
        // A template that writes only roles and content shows no call: the built-in form.
        ChatTemplate.FromJinja("{% for m in messages %}{{ m.role + ': ' + m.content }}{% endfor %}").CallFormat.Should().Be(ToolCallFormat.BuiltIn);
    }

    [Fact]
    public void Trigger_FormWithoutPrefix_FallsBackToTheBuiltInOpening()
    {
        new ToolCallFormat("", "name", "parameters").Trigger.Should().Be("<tool_call>", "under tool_choice auto a bare object cannot be told from text before it is written");
        new ToolCallFormat("[TOOL_CALLS] [", "name", "arguments").Trigger.Should().Be("[TOOL_CALLS] [");
    }

    /// <summary>Calls as "#call {"name": …, "parameters": {…}}": a prefix and an arguments key of its own; short enough for gpt2-tiny.</summary>
    private const string CallTemplate = "{% for m in messages %}{{ m.role[0] + ':' + m.content }}{% if m.tool_calls %}{% for c in m.tool_calls %}"
        + "{{ '#call {\"name\": \"' + c.function.name + '\", \"parameters\": ' + c.function.arguments|tojson + '}' }}{% endfor %}{% endif %}{{ '\\n' }}{% endfor %}"
        + "{% if add_generation_prompt %}{{ 'a:' }}{% endif %}";

    [Fact]
    public async Task Chat_ToolsOnAnImportedCheckpoint_CallsAreWrittenAndReadInItsTemplatesForm()
    {
        await using var factory = new FineTuningFactory(new Dictionary<string, string?> { ["FineTuning:WorkerEnabled"] = "false" });
        var http = factory.CreateClient();
        var target = await ChatTemplateServingTests.ImportTemplatedAsync(factory, http, "caller", CallTemplate);
        var tools = new[]
        {
            // Short names: gpt2-tiny has 64 positions and a byte-sized vocabulary.
            new { type = "function", function = new { name = "w", parameters = new { type = "object", properties = new { c = new { type = "string", @enum = new[] { "Oslo", "Rome" } } }, required = new[] { "c" }, additionalProperties = false } } },
        };

        var response = await http.PostAsJsonAsync("/v1/chat/completions", new
        {
            model = "caller", messages = new[] { new { role = "user", content = "w?" } }, tools, tool_choice = "required", n = 8, temperature = 1.0, max_tokens = 54, seed = 5,
        }, Ct);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(Ct);

        ChatTemplate.For(target).CallFormat.Should().Be(new ToolCallFormat("#call ", "name", "parameters"));
        response.IsSuccessStatusCode.Should().BeTrue(body.ToString());
        var choices = body.GetProperty("choices").EnumerateArray().ToList();
        choices.Should().HaveCount(8);
        foreach (var choice in choices)
        {
            choice.GetProperty("finish_reason").GetString().Should().Be("tool_calls", choice.ToString());
            var call = choice.GetProperty("message").GetProperty("tool_calls").EnumerateArray().Single().GetProperty("function");
            call.GetProperty("name").GetString().Should().Be("w");
            JsonDocument.Parse(call.GetProperty("arguments").GetString()!).RootElement.GetProperty("c").GetString().Should().BeOneOf("Oslo", "Rome");
        }
    }
}

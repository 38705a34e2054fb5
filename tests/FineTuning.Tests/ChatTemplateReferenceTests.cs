using System.Text.Json.Nodes;
using AspireTune.FineTuning.Curation;
using AspireTune.FineTuning.Serving;
using AspireTune.FineTuning.Serving.Templates;
using AspireTune.FineTuning.Tests.Engine;

namespace AspireTune.FineTuning.Tests;

/// <summary>
/// The chat templates of the SentencePiece families (Llama 2, Mistral v0.1/v0.2, TinyLlama/Zephyr, Gemma, Phi-3), and
/// Llama 3.1's and Mistral v0.3's, as Fixtures/chat-templates has them, rendered by the Jinja subset, compared character for character with what the Jinja port of
/// transformers.js renders (Fixtures/chat-template-reference.json, written by tools/fixtures/chat_template_reference.mjs),
/// refusals included: a conversation the template refuses is a <see cref="TemplateException"/> with its message.
/// </summary>
public sealed class ChatTemplateReferenceTests
{
    private static readonly JsonObject Reference = EngineFixtures.Reference("chat-template-reference.json");

    private static IEnumerable<JsonObject> Templates => Reference["templates"]!.AsArray().Select(t => t!.AsObject());

    public static TheoryData<string, int> Cases()
    {
        var data = new TheoryData<string, int>();
        foreach (var template in Templates)
            for (var i = 0; i < template["cases"]!.AsArray().Count; i++)
                data.Add((string)template["file"]!, i);
        return data;
    }

    private static (string Source, JsonObject Template, JsonObject Case) Load(string file, int index)
    {
        var template = Templates.Single(t => (string)t["file"]! == file);
        return (File.ReadAllText(EngineFixtures.Path_(Path.Combine("chat-templates", file))), template, template["cases"]![index]!.AsObject());
    }

    private static List<ChatMessage> Messages(JsonObject c) =>
        [.. c["messages"]!.AsArray().Select(m => new ChatMessage((string)m!["role"]!, (string)m["content"]!))];

    [Theory]
    [MemberData(nameof(Cases))]
    public void Render_PublishedTemplate_MatchesTheReferenceRendering(string file, int index)
    {
        var (source, template, c) = Load(file, index);
        var variables = new Dictionary<string, object?>
        {
            ["messages"] = Messages(c).Select(m => (object?)new Dictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content }).ToList(),
            ["add_generation_prompt"] = (bool)c["add_generation_prompt"]!,
            ["bos_token"] = (string)template["bos_token"]!,
            ["eos_token"] = (string)template["eos_token"]!,
        };

        var render = () => JinjaTemplate.Parse(source).Render(variables);

        if (c["error"] is { } error)
            render.Should().Throw<TemplateException>().Which.Message.Should().Be("the chat template refused the conversation: " + (string)error!, (string)c["name"]!);
        else
            render().Should().Be((string)c["expected"]!, (string)c["name"]!);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void RenderPrompt_PublishedTemplate_IsTheReferenceWithTheGenerationPrompt(string file, int index)
    {
        var (source, template, c) = Load(file, index);
        if (!(bool)c["add_generation_prompt"]!)
            return; // serving always asks for the generation prompt
        // A tokenizer that prepends nothing keeps the template's bos_token, so the prompt is transformers' text.
        var chat = ChatTemplate.FromJinja(source, (string)template["bos_token"]!, (string)template["eos_token"]!, tokenizerAddsBos: false);

        var render = () => chat.RenderPrompt(Messages(c));

        if (c["error"] is { } error)
            render.Should().Throw<TemplateException>().WithMessage("*" + (string)error!);
        else
            render().Should().Be((string)c["expected"]!, (string)c["name"]!);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void RenderTurns_AnsweredConversation_TrainsEveryAssistantTurnOfTheReferenceText(string file, int index)
    {
        var (source, template, c) = Load(file, index);
        var messages = Messages(c);
        if ((bool)c["add_generation_prompt"]! || c["error"] is not null || messages is not [.., { Role: "assistant" }])
            return; // training renders answered conversations whole
        var eos = (string)template["eos_token"]!;
        var chat = ChatTemplate.FromJinja(source, (string)template["bos_token"]!, eos, tokenizerAddsBos: false);

        var segments = chat.RenderTurns(new TrainingExample(1, messages)).Segments;

        // Training's text is the reference rendering, less a final eos_token (training ends with its own end of text);
        // the trained segments are the assistant turns, each with the end-of-turn text its template writes after it.
        var expected = (string)c["expected"]!;
        string.Concat(segments.Select(s => s.Text)).Should().Be(expected.EndsWith(eos, StringComparison.Ordinal) ? expected[..^eos.Length] : expected);
        segments.Where(s => s.Trained).Select(s => s.Text).Should().HaveCount(messages.Count(m => m.Role == "assistant"))
            .And.AllSatisfy(t => messages.Where(m => m.Role == "assistant").Should().Contain(m => t.Contains(m.Content.Trim(), StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData("llama-2-chat.jinja", "<s>", "</s>", "<s>[INST] Hi [/INST]", " Hello! ")]
    [InlineData("mistral-7b-instruct-v0.1.jinja", "<s>", "</s>", "<s>[INST] Hi [/INST]", "Hello!</s> ")]
    [InlineData("tinyllama-1.1b-chat-v1.0.jinja", "<s>", "</s>", "<|user|>\nHi</s>\n<|assistant|>\n", "Hello!</s>\n")]
    [InlineData("gemma-it.jinja", "<bos>", "<eos>", "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n", "Hello!<end_of_turn>\n")]
    [InlineData("phi-3-mini-instruct.jinja", "<s>", "<|endoftext|>", "<|user|>\nHi<|end|>\n<|assistant|>\n", "Hello!<|end|>\n")]
    public void Render_TrainingExample_SplitsWhereTheGenerationPromptEnds(string file, string bos, string eos, string prompt, string completion)
    {
        var chat = ChatTemplate.FromJinja(File.ReadAllText(EngineFixtures.Path_(Path.Combine("chat-templates", file))), bos, eos, tokenizerAddsBos: false);

        var rendered = chat.Render(new TrainingExample(1, [new ChatMessage("user", "Hi"), new ChatMessage("assistant", "Hello!")]));

        // The completion is what the answered conversation adds to the prompt, less a final eos_token (training appends
        // its own end of text): Llama 2 ends " Hello! </s>", Phi-3 ends the conversation with <|endoftext|>.
        rendered.Should().Be((prompt, completion));
    }
}

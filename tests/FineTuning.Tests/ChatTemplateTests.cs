using System.Text.Json.Nodes;
using AspireTune.FineTuning.Curation;
using AspireTune.FineTuning.Serving;
using AspireTune.FineTuning.Serving.Templates;

namespace AspireTune.FineTuning.Tests;

/// <summary>
/// The chat templates of four real checkpoint families, as their tokenizer_config.json holds them (Jinja escapes
/// kept as the JSON decodes them), rendered by the Jinja subset to the text transformers' apply_chat_template gives.
/// </summary>
public sealed class ChatTemplateTests
{
    /// <summary>meta-llama/Meta-Llama-3-8B-Instruct.</summary>
    internal const string Llama3 = """{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}""";

    /// <summary>Qwen/Qwen2.5-7B-Instruct.</summary>
    internal const string Qwen25 = """
        {%- if tools %}
            {{- '<|im_start|>system\n' }}
            {%- if messages[0]['role'] == 'system' %}
                {{- messages[0]['content'] }}
            {%- else %}
                {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
            {%- endif %}
            {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
            {%- for tool in tools %}
                {{- "\n" }}
                {{- tool | tojson }}
            {%- endfor %}
            {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
        {%- else %}
            {%- if messages[0]['role'] == 'system' %}
                {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
            {%- else %}
                {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
            {%- endif %}
        {%- endif %}
        {%- for message in messages %}
            {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
                {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
            {%- elif message.role == "assistant" %}
                {{- '<|im_start|>' + message.role }}
                {%- if message.content %}
                    {{- '\n' + message.content }}
                {%- endif %}
                {%- for tool_call in message.tool_calls %}
                    {%- if tool_call.function is defined %}
                        {%- set tool_call = tool_call.function %}
                    {%- endif %}
                    {{- '\n<tool_call>\n{"name": "' }}
                    {{- tool_call.name }}
                    {{- '", "arguments": ' }}
                    {{- tool_call.arguments | tojson }}
                    {{- '}\n</tool_call>' }}
                {%- endfor %}
                {{- '<|im_end|>\n' }}
            {%- elif message.role == "tool" %}
                {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
                    {{- '<|im_start|>user' }}
                {%- endif %}
                {{- '\n<tool_response>\n' }}
                {{- message.content }}
                {{- '\n</tool_response>' }}
                {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
                    {{- '<|im_end|>\n' }}
                {%- endif %}
            {%- endif %}
        {%- endfor %}
        {%- if add_generation_prompt %}
            {{- '<|im_start|>assistant\n' }}
        {%- endif %}

        """;

    /// <summary>HuggingFaceTB/SmolLM2-1.7B-Instruct (its strings hold real line breaks).</summary>
    private const string SmolLm2 = """
        {% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system
        You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>
        ' }}{% endif %}{{'<|im_start|>' + message['role'] + '
        ' + message['content'] + '<|im_end|>' + '
        '}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant
        ' }}{% endif %}
        """;

    /// <summary>mistralai/Mistral-7B-Instruct-v0.2.</summary>
    private static readonly string Mistral = File.ReadAllText(Engine.EngineFixtures.Path_(Path.Combine("chat-templates", "mistral-7b-instruct-v0.2.jinja")));

    private static Dictionary<string, object?> Variables(bool generationPrompt, string bos = "", string eos = "", params (string Role, string Content)[] messages) => new()
    {
        ["messages"] = messages.Select(m => (object?)new Dictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content }).ToList(),
        ["add_generation_prompt"] = generationPrompt,
        ["bos_token"] = bos,
        ["eos_token"] = eos,
    };

    [Fact]
    public void Render_Llama3Template_MatchesTransformers()
    {
        var text = JinjaTemplate.Parse(Llama3).Render(Variables(true, "<|begin_of_text|>", "<|eot_id|>", ("system", "You are terse. "), ("user", "Hi")));

        text.Should().Be("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
            + "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
    }

    [Fact]
    public void Render_Qwen25Template_MatchesTransformersWithAndWithoutTools()
    {
        var template = JinjaTemplate.Parse(Qwen25);
        var plain = template.Render(Variables(true, messages: [("user", "Hi"), ("assistant", "Hello!"), ("user", "Bye")]));
        var withTools = Variables(true, messages: [("system", "Be brief."), ("user", "Weather in Oslo?")]);
        withTools["tools"] = new List<object?> { JinjaValues.FromJson(JsonNode.Parse("""{"type":"function","function":{"name":"get_weather","description":"Weather, now","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}""")) };
        var tools = template.Render(withTools);

        plain.Should().Be("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n");
        tools.Should().Be("<|im_start|>system\nBe brief.\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            + "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
            + "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Weather, now\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}}\n"
            + "</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n"
            + "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
            + "<|im_start|>user\nWeather in Oslo?<|im_end|>\n<|im_start|>assistant\n");
    }

    [Fact]
    public void Render_Qwen25TemplateToolTurns_GroupsToolResponsesUnderOneUserTurn()
    {
        var variables = Variables(false, messages: [("user", "Weather?")]);
        var messages = (List<object?>)variables["messages"]!;
        messages.Add(new Dictionary<string, object?>
        {
            ["role"] = "assistant", ["content"] = "",
            ["tool_calls"] = new List<object?> { new Dictionary<string, object?> { ["function"] = new Dictionary<string, object?> { ["name"] = "get_weather", ["arguments"] = new Dictionary<string, object?> { ["city"] = "Oslo" } } } },
        });
        messages.Add(new Dictionary<string, object?> { ["role"] = "tool", ["content"] = "rain" });
        messages.Add(new Dictionary<string, object?> { ["role"] = "tool", ["content"] = "5 C" });

        var text = JinjaTemplate.Parse(Qwen25).Render(variables);

        text.Should().EndWith("<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call><|im_end|>\n"
            + "<|im_start|>user\n<tool_response>\nrain\n</tool_response>\n<tool_response>\n5 C\n</tool_response><|im_end|>\n");
    }

    [Fact]
    public void Render_SmolLm2Template_MatchesTransformers()
    {
        var text = JinjaTemplate.Parse(SmolLm2).Render(Variables(true, messages: [("user", "Hi")]));

        text.Should().Be("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    }

    [Fact]
    public void Render_MistralTemplate_MatchesTransformersAndRaisesOnRolesItRefuses()
    {
        var template = JinjaTemplate.Parse(Mistral);

        var text = template.Render(Variables(false, "<s>", "</s>", ("user", "Hi"), ("assistant", "Hello!"), ("user", "Bye")));
        var system = () => template.Render(Variables(false, "<s>", "</s>", ("system", "Be brief."), ("user", "Hi")));

        text.Should().Be("<s>[INST] Hi [/INST]Hello!</s>[INST] Bye [/INST]");
        system.Should().Throw<TemplateException>().WithMessage("*Conversation roles must alternate*");
    }

    [Theory]
    [InlineData("llama3")]
    [InlineData("qwen25")]
    [InlineData("smollm2")]
    [InlineData("mistral")]
    public void Render_TrainingExample_CompletionIsWhatTheAnswerAddsToThePrompt(string family)
    {
        var (source, bos, eos, completion) = family switch
        {
            "llama3" => (Llama3, "<|begin_of_text|>", "<|eot_id|>", "Hello!"),
            "qwen25" => (Qwen25, "", "<|im_end|>", "Hello!<|im_end|>\n"),
            "smollm2" => (SmolLm2, "", "<|im_end|>", "Hello!<|im_end|>\n"),
            _ => (Mistral, "<s>", "</s>", "Hello!"),
        };
        var template = ChatTemplate.FromJinja(source, bos, eos);
        var example = new TrainingExample(1, [new ChatMessage("user", "Hi"), new ChatMessage("assistant", "Hello!")]);

        var (prompt, answer) = template.Render(example);
        var served = template.RenderPrompt(example.Prompt);

        answer.Should().Be(completion, "the answer and the template's end of turn, less a final end-of-text token that training appends");
        prompt.Should().Be(served, "training conditions on exactly what serving sends");
        prompt.Should().NotStartWith(bos.Length > 0 ? bos : "\0", "the tokenizer prepends its own beginning-of-text token");
    }

    [Fact]
    public void For_ModelDirectory_UsesItsChatTemplateOrTheBuiltInOne()
    {
        var withTemplate = Directory.CreateTempSubdirectory("aspiretune-template-").FullName;
        var without = Directory.CreateTempSubdirectory("aspiretune-template-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(withTemplate, "tokenizer_config.json"), new JsonObject { ["chat_template"] = SmolLm2, ["eos_token"] = new JsonObject { ["content"] = "<|im_end|>" } }.ToJsonString());
            File.WriteAllText(Path.Combine(without, "tokenizer_config.json"), """{"eos_token":"<|endoftext|>"}""");
            var messages = new[] { new ChatMessage("user", "Hi") };

            ChatTemplate.For(withTemplate).RenderPrompt(messages).Should().StartWith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM");
            ChatTemplate.For(without).Should().BeSameAs(ChatTemplate.BuiltIn);
            ChatTemplate.For(without).RenderPrompt(messages).Should().Be("<|user|>\nHi\n<|assistant|>\n");
        }
        finally
        {
            Directory.Delete(withTemplate, true);
            Directory.Delete(without, true);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void For_TemplateThatWritesBos_DropsItOnlyWhenTheTokenizerPrependsItsOwn(bool addBos)
    {
        var directory = Directory.CreateTempSubdirectory("aspiretune-template-").FullName;
        try
        {
            // The tiny Llama checkpoint's byte-level tokenizer, whose post-processor prepends nothing.
            File.Copy(Engine.EngineFixtures.Path_(Path.Combine("llama-tiny", "tokenizer.json")), Path.Combine(directory, "tokenizer.json"));
            File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), new JsonObject
            {
                ["chat_template"] = Llama3, ["bos_token"] = "<|endoftext|>", ["eos_token"] = "<|endoftext|>", ["add_bos_token"] = addBos,
            }.ToJsonString());

            var prompt = ChatTemplate.For(directory).RenderPrompt([new ChatMessage("user", "Hi")]);

            var body = "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
            prompt.Should().Be(addBos ? body : "<|endoftext|>" + body,
                addBos ? "the tokenizer prepends <|endoftext|> itself: the template's copy would make two" : "nothing else puts the template's beginning-of-text token there");
        }
        finally
        {
            Directory.Delete(directory, true);
        }
    }

    public static TheoryData<string, string> HostileTemplates() => new()
    {
        { "{{ " + new string('(', 100_000) + "1" + new string(')', 100_000) + " }}", "nests its blocks or expressions too deeply" },
        { string.Concat(Enumerable.Repeat("{% if true %}", 50_000)) + string.Concat(Enumerable.Repeat("{% endif %}", 50_000)), "too deeply" },
        { "{{ 1" + string.Concat(Enumerable.Repeat(" + 1", 300_000)) + " }}", "too deeply" }, // parses in a loop, evaluates recursively
        { "{% set ns = namespace(s='ab') %}{% for x in xs %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}", "a string or list of more than 16,777,216" },
        { "{% set ns = namespace(l=[1]) %}{% for x in xs %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | length }}", "a string or list of more than" },
        { "{% set ns = namespace(s='a') %}{% for x in xs %}{% set ns.s = ns.s.replace('a', 'aa') %}{% endfor %}", "a string or list of more than" },
        { "{% set ns = namespace(l=['abcd']) %}{% for x in xs[:22] %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l }}", "a string or list of more than" },
        { "{{ xs | tojson(indent=100000000) }}", "a string or list of more than" },
        { "{% for a in xs %}{% for b in xs %}{% for c in xs %}{% endfor %}{% endfor %}{% endfor %}", "loops more than 4,194,304 times" },
        { "{% for a in xs %}{{ xs | join('" + new string('x', 5_000) + "') }}{% endfor %}", "renders more than 16,777,216 characters" },
    };

    [Theory]
    [MemberData(nameof(HostileTemplates))]
    public void Parse_OrRender_HostileTemplate_IsRefusedWithinItsBounds(string source, string expected)
    {
        var xs = Enumerable.Range(0, 200).Select(i => (object?)(long)i).ToList();

        var act = () => JinjaTemplate.Parse(source).Render(new Dictionary<string, object?> { ["xs"] = xs });

        act.Should().Throw<TemplateException>().WithMessage($"*{expected}*");
    }

    [Theory]
    [InlineData("{% set ns = namespace(n=0) %}{% for x in [1, 2] %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }} {{ 7 // 2 }} {{ 1.5 }} {{ 4 / 2 }}", "2 3 1.5 2.0")]
    [InlineData("{{ x | trim }}|{{ x.strip() }}|{{ x.lstrip() }}|{{ x.split() | join(',') }}", "a\u200bb|a\u200bb|a\u200bb\u3000\u001f|a\u200bb")] // str.isspace, not \u200b
    [InlineData("{{ 'xxaxx'.strip('x') }} {{ '  a '.strip(none) }}", "a a")]
    [InlineData("{{ 'ab'.replace('', '-') }}", "-a-b-")]
    [InlineData("{{ 'a-b-c' | replace('-', '') }}", "abc")]
    [InlineData("{{ '%s and %s' % ('x', 'y') }}", "x and y")]
    [InlineData("{{ [1, 'a', {'k': none}] }}", "[1, 'a', {'k': None}]")]
    [InlineData("{{ {'a': [1, 2]} | tojson(indent=-1) }}", "{\n\"a\": [\n1,\n2\n]\n}")]
    public void Render_NumbersAndStrings_AsPythonWritesThem(string source, string expected)
    {
        JinjaTemplate.Parse(source).Render(new Dictionary<string, object?> { ["x"] = "\u001c\u0085 \ta\u200bb\u3000\u001f" }).Should().Be(expected);
    }

    [Theory]
    [InlineData("{% for x in xs %}{{ x }}", "ends before 'endfor'")]
    [InlineData("{{ 'unclosed }}", "never closed")]
    [InlineData("{% macro m() %}{% endmacro %}", "'macro' is not supported")]
    [InlineData("{{ x | wordwrap }}", "filter 'wordwrap' is not supported")]
    public void Parse_OrRender_WhatTheSubsetLacks_SaysWhat(string source, string expected)
    {
        var act = () => JinjaTemplate.Parse(source).Render(new Dictionary<string, object?> { ["xs"] = new List<object?>(), ["x"] = "a" });

        act.Should().Throw<TemplateException>().WithMessage($"*{expected}*");
    }
}

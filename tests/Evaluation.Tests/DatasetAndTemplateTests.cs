using System.Text;
using AspireTune.Evaluation.Data;
using AspireTune.Evaluation.Datasets;
using AspireTune.Evaluation.Prompts;

namespace AspireTune.Evaluation.Tests;

public class DatasetAndTemplateTests
{
    [Fact]
    public void Parse_MixedLines_ItemsWithErrorsByLineNumber()
    {
        var jsonl = "{\"input\":\"a\",\"expected\":\"x\"}\n\n{\"expected\":\"y\"}\n{not json\n{\"input\":\"b\",\"expected\":7,\"metadata\":{\"k\":1}}\r\n[1]\n";
        var items = DatasetReader.Parse(Encoding.UTF8.GetBytes(jsonl));
        items.Should().HaveCount(5);
        items[0].Should().Be(new DatasetItem(0, 1, "a", "x", null));
        items[1].Error.Should().Be("line 3: 'input' is missing or not a non-empty string");
        items[2].Error.Should().StartWith("line 4: not valid JSON");
        items[3].Input.Should().Be("b");
        items[3].Expected.Should().Be("7");
        items[4].Error.Should().Be("line 6: expected a JSON object, found Array");
    }

    [Fact]
    public void Validate_UnknownVariableAndFunctionCall_ReportedWithOffsets()
    {
        var problems = PromptTemplates.Validate("Hi {{$input}} {{$question}} {{time.now}}", "template");
        problems.Should().HaveCount(2);
        problems[0].Should().Contain("unknown variable '$question'").And.Contain("$input, $examples, $context");
        problems[1].Should().Contain("calls a function");
        PromptTemplates.Validate("Q: {{$input}}\n{{$examples}}\n{{ $context }}", "template").Should().BeEmpty();
    }

    [Fact]
    public async Task Render_ExamplesAndContext_FilledInAndNotHtmlEncoded()
    {
        var prompt = PromptTemplates.Compile(new PromptVersionEntity
        {
            Name = "p",
            Version = 1,
            Template = "{{$examples}}\n---\n{{$context}}\n---\nInput: {{$input}}",
            System = "Classify <carefully>.",
        });
        prompt.UsesRetrieval.Should().BeTrue();
        var (system, user) = await PromptTemplates.RenderAsync(prompt, "is 1 < 2 & 3 > 2?",
            [new PromptExample("win money", "spam"), new PromptExample("lunch?", "ham")], ["passage one", "passage two"], CancellationToken.None);
        system.Should().Be("Classify <carefully>.");
        user.Should().Be("Input: win money\nOutput: spam\n\nInput: lunch?\nOutput: ham\n---\npassage one\n\npassage two\n---\nInput: is 1 < 2 & 3 > 2?");
    }
}

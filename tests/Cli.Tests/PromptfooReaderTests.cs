using AspireTune.Cli.Infrastructure;
using AspireTune.Cli.Promptfoo;
using AspireTune.TestSupport;

namespace AspireTune.Cli.Tests;

/// <summary>The promptfoo configuration reader: what it maps, and what it refuses by name with file and line.</summary>
public sealed class PromptfooReaderTests
{
    private static string Folder(params (string Name, string Text)[] files)
    {
        var folder = TestInfrastructure.TempDataFolder("pf-reader");
        foreach (var (name, text) in files)
            File.WriteAllText(Path.Combine(folder, name), text);
        return folder;
    }

    private static PromptfooSuite Read(string folder) => PromptfooReader.Read(Path.Combine(folder, "promptfooconfig.yaml"));

    private const string Providers = """
        providers:
          - id: openai:gpt-4o-mini
            config: { apiBaseUrl: "http://127.0.0.1:9/v1", apiKeyEnvar: MY_KEY, max_tokens: 20, inputCost: 0.00000015, outputCost: 0.0000006 }
        """;

    [Fact]
    public void Read_CsvTestsWithExpectedColumns_MapsVarsAssertionsAndDescriptions()
    {
        var folder = Folder(
            ("promptfooconfig.yaml", "prompts: [\"Q: {{question}}\"]\n" + Providers + "\ntests: file://tests.csv\n"),
            ("tests.csv", "question,__expected1,__expected2,__description\n\"Capital, of France?\",icontains: paris,similar(0.8): Paris,capital\nWho wrote \"\"Hamlet\"\"?,Shakespeare,grade: names the author,hamlet\n"));

        var suite = Read(folder);

        suite.Tests.Should().HaveCount(2);
        suite.Tests[0].Vars["question"].Should().Be("Capital, of France?");
        suite.Tests[0].Description.Should().Be("capital");
        suite.Tests[0].Assert.Select(a => a.Type).Should().Equal("icontains", "similar");
        suite.Tests[0].Assert[1].Threshold.Should().Be(0.8);
        suite.Tests[1].Assert.Select(a => (a.Type, a.Value!.Value.GetString())).Should().Equal(("equals", "Shakespeare"), ("llm-rubric", "names the author"));
        suite.Tests[1].At.Line.Should().Be(3);
        var provider = suite.Providers.Single();
        (provider.Model, provider.ApiKeyVariable, provider.MaxTokens, provider.InputPricePerMillion, provider.OutputPricePerMillion)
            .Should().Be(("gpt-4o-mini", "MY_KEY", 20, 0.15, 0.6));
    }

    [Fact]
    public void Read_ListVariablesAndDefaultTest_ExpandEveryCombinationWithDefaultsFirst()
    {
        var folder = Folder(("promptfooconfig.yaml", "prompts: [\"{{a}} {{b}} {{c}}\"]\n" + Providers + """

            defaultTest:
              vars: { c: fixed }
              assert:
                - type: latency
                  threshold: 5000
            tests:
              - vars: { a: [one, two], b: [x, y, z] }
                assert:
                  - type: contains
                    value: "{{a}}"
            """));

        var suite = Read(folder);

        suite.Tests.Should().HaveCount(6);
        suite.Tests.Select(t => $"{t.Vars["a"]}{t.Vars["b"]}{t.Vars["c"]}").Should().OnlyHaveUniqueItems().And.Contain("twozfixed");
        suite.Tests[0].Assert.Select(a => a.Type).Should().Equal("latency", "contains");
    }

    [Fact]
    public void Read_PromptFiles_SplitsTextOnDashesAndReadsChatJson()
    {
        var folder = Folder(
            ("promptfooconfig.yaml", "prompts:\n  - file://prompts.txt\n  - id: file://chat.json\n    label: chat\n" + Providers + "\ntests:\n  - vars: { q: hi }\n"),
            ("prompts.txt", "First: {{q}}\n---\nSecond: {{q}}\n"),
            ("chat.json", """[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Answer {{q}}"}]"""));

        var prompts = Read(folder).Prompts;

        prompts.Select(p => (p.Label, p.User, p.System)).Should().Equal(
            ("prompts.txt#1", "First: {{q}}", null), ("prompts.txt#2", "Second: {{q}}", null), ("chat", "Answer {{q}}", "Be terse."));
    }

    [Theory]
    [InlineData("scenarios: []", "scenarios", "'scenarios' is not supported")]
    [InlineData("providers:\n  - id: openai:chat:x\n    config: { apiKey: sk-123 }", "apiKey", "keys come from the environment")]
    [InlineData("providers:\n  - id: openai:chat:x\n    config: { top_p: 0.5 }", "top_p", "provider config 'top_p' is not supported")]
    [InlineData("tests:\n  - vars: { q: x }\n    assert:\n      - type: python\n        value: file://check.py", "type: python", "'python' assertions run code")]
    [InlineData("tests:\n  - vars: { q: x }\n    assert:\n      - type: contains\n        value: x\n        transform: output.trim()", "transform", "'transform' in an assertion is not supported")]
    [InlineData("prompts: [file://make_prompt.js]", "make_prompt", ".js prompts")]
    [InlineData("defaultTest:\n  assert:\n    - type: latency", "type: latency", "'latency' needs a 'threshold'")]
    public void Read_Unmappable_RefusedWithFileAndLine(string yaml, string lineWith, string message)
    {
        // A valid configuration around the piece under test (which replaces the default of its own key).
        var text = "description: refused\n"
            + (yaml.StartsWith("prompts", StringComparison.Ordinal) ? "" : "prompts: [\"{{q}}\"]\n")
            + (yaml.StartsWith("providers", StringComparison.Ordinal) ? "" : "providers: [openai:chat:x]\n")
            + (yaml.StartsWith("tests", StringComparison.Ordinal) ? "" : "tests: [{vars: {q: x}}]\n")
            + yaml + "\n";
        var line = text.Split('\n').ToList().FindIndex(l => l.Contains(lineWith, StringComparison.Ordinal)) + 1;
        var folder = Folder(("promptfooconfig.yaml", text), ("make_prompt.js", "module.exports = () => 'x';"));

        var act = () => Read(folder);

        var refused = act.Should().Throw<PromptfooConfigException>().Which;
        refused.Message.Should().Contain(message);
        refused.At.Line.Should().Be(line, text);
        refused.At.File.Should().EndWith("promptfooconfig.yaml");
        refused.ToCli().ExitCode.Should().Be(ExitCodes.Usage);
    }

    [Theory]
    [InlineData("{{ question }}", null)]
    [InlineData("{{ env.HOME }}", null)]
    [InlineData("{{ question | upper }}", "no filters")]
    [InlineData("{% if x %}y{% endif %}", "Nunjucks tag")]
    [InlineData("{{ item.name }}", "no filters, fields")]
    public void Check_TemplateSubset_AcceptsVariablesRefusesTheRest(string template, string? problem)
    {
        var found = NunjucksTemplate.Check(template);

        if (problem is null)
            found.Should().BeNull();
        else
            found.Should().Contain(problem);
    }

    [Fact]
    public void Render_VariablesAndComments_FillsKnownEmptiesUnknown()
    {
        NunjucksTemplate.Render("{# note #}Q: {{ q }} / {{missing}}!", new Dictionary<string, string> { ["q"] = "why" }).Should().Be("Q: why / !");
    }
}

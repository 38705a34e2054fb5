using AspireTune.Cli.Commands;
using AspireTune.Cli.Infrastructure;
using AspireTune.MockOpenAI;
using AspireTune.TestSupport;

namespace AspireTune.Cli.Tests;

/// <summary>
/// <c>aspiretune eval</c> on promptfoo-format configurations against the real OpenAI-compatible test server: one
/// prompt x two providers x a JSONL test file, assertions inline and from defaultTest.
/// </summary>
public sealed class PromptfooEvalTests(EmbeddedHostFixture host) : IClassFixture<EmbeddedHostFixture>
{
    // Per test (in file order), what each provider's answer does to the assertions, worked out from the mock's rules:
    // large answers "Paris is the capital of France.", "4", {"answer": "yes"}, and echoes the prompt otherwise;
    // small always answers "I am not sure.".
    private static readonly bool[] Large = [true, true, true, false, false];
    private static readonly bool[] Small = [false, false, false, false, true];

    private const string Tests = """
        {"description": "capital", "vars": {"question": "What is the capital of France?", "expected": "Paris"}, "assert": [{"type": "icontains", "value": "{{expected}}"}]}
        {"description": "sum", "vars": {"question": "What is 2 + 2?"}, "assert": [{"type": "equals", "value": "4"}]}
        {"description": "json", "vars": {"question": "Reply in JSON please"}, "assert": [{"type": "is-json"}, {"type": "not-contains", "value": "error"}]}
        {"description": "hamlet", "vars": {"question": "Who wrote Hamlet?"}, "assert": [{"type": "starts-with", "value": "Shakespeare"}]}
        {"description": "unsure", "vars": {"question": "Say sure"}, "assert": [{"type": "regex", "value": "[Nn]ot sure"}]}
        """;

    internal static string WriteConfig(string baseUrl, string tests = Tests, string? defaultOptions = null, bool withSmall = true)
    {
        var small = withSmall ? $"""
              - id: openai:chat:small
                label: small
                config:
                  apiBaseUrl: {baseUrl}
                  temperature: 0
            """ : "";
        var folder = TestInfrastructure.TempDataFolder("promptfoo");
        File.WriteAllText(Path.Combine(folder, "tests.jsonl"), tests);
        File.WriteAllText(Path.Combine(folder, "promptfooconfig.yaml"), $$$"""
            description: CLI test
            prompts:
              - "Answer briefly: {{question}}"
            providers:
              - id: openai:chat:large
                label: large
                config:
                  apiBaseUrl: {{{baseUrl}}}
                  cost: 0.000001
            {{{small}}}
            tests: file://tests.jsonl
            defaultTest:
              assert:
                - type: latency
                  threshold: 60000
            {{{defaultOptions}}}
            """);
        return Path.Combine(folder, "promptfooconfig.yaml");
    }

    [Fact]
    public async Task Eval_PromptTwoProvidersJsonlTestsInProcess_PassFailAsAssertionsDefineAndExit100()
    {
        // In this process (embedded host of its own), against the same OpenAI-compatible server the fixture runs.
        var config = WriteConfig(host.Model.BaseUrl);
        var result = await Cli.RunAsync("eval", config, "--data", TestInfrastructure.TempDataFolder("cli-eval"), "--json");

        result.Exit.Should().Be(ExitCodes.GateFailed, result.ToString());
        var report = result.Json<EvalCommand.EvalReport>();
        report.Results.Should().HaveCount(10);
        foreach (var row in report.Results)
        {
            var expected = row.Provider == "large" ? Large[row.Test] : Small[row.Test];
            row.Pass.Should().Be(expected, $"test {row.Test} ({row.Description}) on {row.Provider} answered '{row.Output}' ({row.Error})");
            row.Error.Should().BeNull();
        }
        report.Passed.Should().Be(4);
        report.Failed.Should().Be(6);
        report.Candidates.Should().HaveCount(2);
        report.Candidates.Single(c => c.Provider == "large").PassRate.Should().Be(0.6);
        report.Candidates.Single(c => c.Provider == "large").CostUsd.Should().BeGreaterThan(0, "the provider's cost per token prices its calls");
        report.Runs.Should().HaveCount(2, "the providers differ in temperature, which is per run");
    }

    [Fact]
    public async Task Eval_AllAssertionsPass_ExitsZeroAndPrintsTable()
    {
        var tests = """
            {"vars": {"question": "What is the capital of France?"}, "assert": [{"type": "contains", "value": "Paris"}, {"type": "not-icontains", "value": "london"}]}
            {"vars": {"question": "What is 2 + 2?"}, "assert": [{"type": "contains-any", "value": ["4", "four"]}]}
            """;
        var config = WriteConfig(host.Model.BaseUrl, tests, withSmall: false);

        var result = await Cli.RunAsync("eval", config, "--url", host.Url);

        result.Exit.Should().Be(ExitCodes.Ok, result.ToString());
        result.Stdout.Should().Contain("PASS").And.Contain("2 passed, 0 failed, 0 errors").And.NotContain("small");
    }

    [Fact]
    public async Task Eval_FailOnGates_GatesDecideTheExitCode()
    {
        var config = WriteConfig(host.Model.BaseUrl);

        var lenient = await Cli.RunAsync("eval", config, "--url", host.Url, "--json", "--fail-on", "pass-rate[large]<0.5", "--fail-on", "latency-p95>60000");
        lenient.Exit.Should().Be(ExitCodes.Ok, lenient.ToString());
        lenient.Json<EvalCommand.EvalReport>().Gates.Should().OnlyContain(g => g.Passed);

        var strict = await Cli.RunAsync("eval", config, "--url", host.Url, "--json", "--fail-on", "small worse-than large by 0.05", "--fail-on", "accuracy[large]<0.9");
        strict.Exit.Should().Be(ExitCodes.GateFailed, strict.ToString());
        var gates = strict.Json<EvalCommand.EvalReport>().Gates;
        gates.Should().HaveCount(2).And.OnlyContain(g => !g.Passed);
        gates[0].Detail.Should().Contain("small - large pass rate = -0.400");
    }

    [Fact]
    public async Task Eval_LlmRubricAndSimilar_GradedByTheGraderProvider()
    {
        var tests = """
            {"vars": {"question": "What is the capital of France?"}, "assert": [{"type": "llm-rubric", "value": "Names Paris"}, {"type": "similar", "value": "Paris is the capital of France.", "threshold": 0.99}]}
            """;
        var config = WriteConfig(host.Model.BaseUrl, tests, defaultOptions: $"""
              options:
                provider:
                  id: openai:chat:large
                  config:
                    apiBaseUrl: {host.Model.BaseUrl}
            """);

        var result = await Cli.RunAsync("eval", config, "--url", host.Url, "--json");

        var rows = result.Json<EvalCommand.EvalReport>().Results;
        // The mock judge grades 8/10 (>= 0.5); the large model's answer embeds identically to the reference text.
        rows.Single(r => r.Provider == "large").Pass.Should().BeTrue(result.ToString());
        rows.Single(r => r.Provider == "small").FailedAssertions.Should().Contain("similar");
    }

    [Fact]
    public async Task Eval_AspireTuneProvider_PromptsTheModelAspireTuneServes()
    {
        var folder = TestInfrastructure.TempDataFolder("promptfoo-own");
        File.WriteAllText(Path.Combine(folder, "promptfooconfig.yaml"), """
            prompts: ["Say something about {{topic}}"]
            providers:
              - id: aspiretune:aspiretune-tiny
                config: { max_tokens: 8 }
            evaluateOptions: { maxConcurrency: 2 }
            tests:
              - vars: { topic: whales }
                assert: [{ type: latency, threshold: 600000 }]
            """);

        var result = await Cli.RunAsync("eval", Path.Combine(folder, "promptfooconfig.yaml"), "--url", host.Url, "--json");

        result.Exit.Should().Be(ExitCodes.Ok, result.ToString());
        var row = result.Json<EvalCommand.EvalReport>().Results.Should().ContainSingle().Which;
        row.Provider.Should().Be("aspiretune:aspiretune-tiny");
        row.Error.Should().BeNull();
        row.Output.Should().NotBeNull("the served model answered through its /v1 API");
    }

    [Theory]
    [InlineData("""{"vars": {"question": "q"}, "assert": [{"type": "javascript", "value": "output.length > 3"}]}""", "tests.jsonl:2", "'javascript' assertions run code")]
    [InlineData("""{"vars": {"question": "q"}, "assert": [{"type": "levenshtein", "value": "x"}]}""", "tests.jsonl:2", "assertion type 'levenshtein' is not supported")]
    [InlineData("""{"vars": {"question": "q"}, "assert": [{"type": "contains", "value": "{{ question | upper }}"}]}""", "tests.jsonl:2", "no filters")]
    [InlineData("""{"vars": {"question": "q"}, "threshold": 0.5}""", "tests.jsonl:2", "'threshold' in a test is not supported")]
    public async Task Eval_UnmappableTest_RefusedByNameWithFileAndLineExit2(string test, string where, string message)
    {
        var config = WriteConfig(host.Model.BaseUrl, "\n" + test);

        var result = await Cli.RunAsync("eval", config, "--url", host.Url);

        result.Exit.Should().Be(ExitCodes.Usage, result.ToString());
        result.Stderr.Should().Contain(where).And.Contain(message);
    }

    [Fact]
    public async Task Eval_UnsupportedProvider_RefusedWithConfigLine()
    {
        var config = WriteConfig(host.Model.BaseUrl);
        File.WriteAllText(config, File.ReadAllText(config).Replace("id: openai:chat:small", "id: anthropic:messages:claude"));

        var result = await Cli.RunAsync("eval", config, "--url", host.Url);

        result.Exit.Should().Be(ExitCodes.Usage, result.ToString());
        result.Stderr.Should().Contain("promptfooconfig.yaml:10").And.Contain("provider 'anthropic:messages:claude' is not supported");
    }
}

using System.Text;
using AspireTune.Evaluation.Data;
using AspireTune.Evaluation.Endpoints;
using AspireTune.Evaluation.Prompts;
using AspireTune.Evaluation.Retrieval;

namespace AspireTune.Evaluation.Tests;

public class PromptFitterTests
{
    private static CompiledPrompt Compile(string template) =>
        PromptTemplates.Compile(new PromptVersionEntity { Name = "p", Version = 1, Template = template });

    // One token per UTF-8 byte: the built-in model's byte-level tokenizer.
    private static ValueTask<int> Bytes(string? system, string user, CancellationToken ct) =>
        ValueTask.FromResult(Encoding.UTF8.GetByteCount(system ?? "") + Encoding.UTF8.GetByteCount(user));

    private static RetrievedContext Examples(params string[] texts) =>
        new(texts.Select(t => new PromptExample(t, "label")).ToList(), texts.ToList());

    [Fact]
    public async Task FitAsync_ExamplesExceedBudget_DropsTheLeastSimilarUntilItFits()
    {
        var prompt = Compile("{{$examples}}\nQ: {{$input}}");
        var retrieved = Examples(new string('a', 40), new string('b', 40), new string('c', 40));
        // Each example renders as "Input: <40>\nOutput: label" (61 bytes) plus "\n\n" between; the rest is "\nQ: hello" (9).
        var fitted = await PromptFitter.FitAsync(prompt, "hello", retrieved, budget: 140, Bytes, CancellationToken.None);

        fitted.ExamplesShown.Should().Be(2);
        fitted.ExamplesRetrieved.Should().Be(3);
        fitted.InputTruncated.Should().BeFalse();
        fitted.Tokens.Should().Be(61 + 2 + 61 + 9).And.BeLessThanOrEqualTo(140);
        fitted.User.Should().Contain(new string('a', 40)).And.Contain(new string('b', 40)).And.NotContain("ccc");
    }

    [Fact]
    public async Task FitAsync_InputAloneTooLong_CutsTheInputAtAWordAndShowsNoExample()
    {
        var prompt = Compile("{{$examples}}\nQ: {{$input}}");
        var input = string.Join(' ', Enumerable.Repeat("word", 100)); // 499 bytes
        var fitted = await PromptFitter.FitAsync(prompt, input, Examples("one example"), budget: 200, Bytes, CancellationToken.None);

        fitted.ExamplesShown.Should().Be(0);
        fitted.InputTruncated.Should().BeTrue();
        fitted.Tokens.Should().BeLessThanOrEqualTo(200);
        fitted.User.Should().EndWith("word").And.StartWith("\nQ: word word");
    }

    [Fact]
    public async Task FitAsync_PromptWithoutRetrieval_ReportsNoExampleCounts()
    {
        var fitted = await PromptFitter.FitAsync(Compile("Q: {{$input}}"), "short", null, budget: 100, Bytes, CancellationToken.None);

        fitted.User.Should().Be("Q: short");
        fitted.ExamplesShown.Should().BeNull();
        fitted.InputTruncated.Should().BeFalse();
    }

    [Fact]
    public async Task FitAsync_TemplateLongerThanBudget_Throws()
    {
        var act = () => PromptFitter.FitAsync(Compile(new string('x', 300) + "{{$input}}"), "in", null, budget: 100, Bytes, CancellationToken.None);

        await act.Should().ThrowAsync<PromptTooLongException>();
    }

    [Fact]
    public void Estimate_HostedModel_IsOneTokenPerThreeBytesPlusMessageOverhead()
    {
        // 30 bytes of user text: 10 + 4 for the message, + 3 for the reply's priming.
        TokenCounter.Estimate(null, new string('x', 30)).Should().Be(17);
        TokenCounter.KnownContextLength("gpt-4o-mini").Should().Be(128_000);
        TokenCounter.KnownContextLength("my-model").Should().BeNull();
    }
}

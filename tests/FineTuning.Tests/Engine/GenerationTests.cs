using AspireTune.Engine.Generation;
using AspireTune.Engine.Models;
using static TorchSharp.torch;

namespace AspireTune.FineTuning.Tests.Engine;

public sealed class GenerationTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task StreamAsync_SampledWithSeed_ConcatenatesToGenerateTextWithSameTokens()
    {
        using var model = CausalLm.Load(EngineFixtures.Path_("llama-tiny"));
        var generator = new TextGenerator(model);
        var options = new GenerationOptions { MaxTokens = 12, Temperature = 0.8, TopP = 0.9, Seed = 3, StopAtEos = false };
        var prompt = generator.EncodePrompt("Hello");

        var whole = generator.Generate(prompt, options, Ct);
        var streamed = new List<GeneratedToken>();
        await foreach (var t in generator.StreamAsync(prompt, options, Ct)) streamed.Add(t);

        streamed.Select(t => t.Id).Should().Equal(whole.Tokens.Select(t => t.Id));
        string.Concat(streamed.Select(t => t.Text)).Should().Be(whole.Text);
        whole.Tokens.Should().HaveCount(12);
        whole.Tokens.Should().OnlyContain(t => t.Logprob <= 0);
        is_grad_enabled().Should().BeTrue("generation must not leave gradients off on the thread it ran on");
    }

    [Fact]
    public void Generate_WithKvCache_GivesTheLogprobsOfAFullForwardPass()
    {
        using var model = CausalLm.Load(EngineFixtures.Path_("qwen2-tiny"));
        var generator = new TextGenerator(model);
        int[] prompt = [3, 14, 15, 92];

        var result = generator.Generate(prompt, new GenerationOptions { MaxTokens = 8, StopAtEos = false }, Ct);
        var scores = generator.Score([.. prompt, .. result.Tokens.Select(t => t.Id)]);

        for (var i = 0; i < result.Tokens.Count; i++)
            scores.Logprobs[prompt.Length + i]!.Value.Should().BeApproximately(result.Tokens[i].Logprob, 1e-4);
        scores.Logprobs[0].Should().BeNull();
    }

    [Fact]
    public void Generate_StopSequence_EndsBeforeItAndReportsStop()
    {
        using var model = CausalLm.Load(EngineFixtures.Path_("gpt2-tiny"));
        var generator = new TextGenerator(model);
        var free = generator.Generate([5, 6, 7], new GenerationOptions { MaxTokens = 20, StopAtEos = false }, Ct);
        // A stop sequence taken from the middle of the free-running output must cut it there.
        var stop = free.Text.Substring(free.Text.Length / 2, 2);

        var stopped = generator.Generate([5, 6, 7], new GenerationOptions { MaxTokens = 20, StopAtEos = false, Stop = [stop] }, Ct);

        stopped.FinishReason.Should().Be(FinishReasons.Stop);
        stopped.Text.Should().Be(free.Text[..free.Text.IndexOf(stop, StringComparison.Ordinal)]);
        stopped.Text.Should().NotContain(stop);
    }

    [Fact]
    public void Generate_TopLogprobs_IncludesTheChosenGreedyToken()
    {
        using var model = CausalLm.Load(EngineFixtures.Path_("gpt2-tiny"));

        var result = new TextGenerator(model).Generate([1, 2, 3], new GenerationOptions { MaxTokens = 3, TopLogprobs = 5, StopAtEos = false }, Ct);

        foreach (var t in result.Tokens)
        {
            t.TopLogprobs.Should().HaveCount(5);
            t.TopLogprobs![0].Id.Should().Be(t.Id);
            t.TopLogprobs[0].Logprob.Should().BeApproximately(t.Logprob, 1e-6);
        }
    }

    [Fact]
    public void Generate_TokenOutsideVocabulary_ThrowsArgumentException()
    {
        using var model = CausalLm.Load(EngineFixtures.Path_("gpt2-tiny"));

        var act = () => new TextGenerator(model).Generate([1, 300], new GenerationOptions(), Ct);

        act.Should().Throw<ArgumentException>().WithMessage("*token id 300 at position 1*");
    }

    [Fact]
    public void Forward_IncrementalWithCache_EqualsFullSequence()
    {
        using var model = CausalLm.Load(EngineFixtures.Path_("llama-tiny"));
        using var ids = tensor(new long[] { 9, 8, 7, 6, 5, 4 }, [1, 6]);
        using var _ = no_grad();

        using var full = model.Forward(ids);
        using var cache = model.NewCache();
        using var first = model.Forward(ids[.., ..4], null, cache);
        using var second = model.Forward(ids[.., 4..], null, cache);

        cat([first, second], 1).allclose(full, rtol: 0, atol: 1e-5).Should().BeTrue();
        cache.Length.Should().Be(6);
    }
}

using AspireTune.Engine.Generation;
using AspireTune.Engine.Models;

namespace AspireTune.FineTuning.Tests.Engine;

public sealed class BatchedGenerationTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("gpt2-tiny")]
    [InlineData("llama-tiny")]
    public async Task GenerateAsync_ConcurrentRequestsJoiningAndLeaving_GiveTheTokensOfEachRequestAlone(string fixture)
    {
        using var model = CausalLm.Load(EngineFixtures.Path_(fixture));
        var alone = new TextGenerator(model);
        using var batched = new BatchedGenerator(model, new BatchingOptions { KvCacheTokens = 1024 });
        // Prompts of different lengths, each with its own settings: plain greedy, a stop sequence, seeded sampling,
        // top logprobs, logit bias; and max_tokens from 3 to 40, so sequences leave while others run on.
        var requests = new (int[] Prompt, GenerationOptions Options)[]
        {
            ([5, 6, 7], new GenerationOptions { MaxTokens = 40, StopAtEos = false }),
            ([11, 12, 13, 14, 15, 16, 17, 18, 19], new GenerationOptions { MaxTokens = 12, StopAtEos = false }),
            ([42], new GenerationOptions { MaxTokens = 3, StopAtEos = false }),
            ([9, 8, 7, 6, 5], new GenerationOptions { MaxTokens = 20, Temperature = 0.9, TopP = 0.8, Seed = 7, StopAtEos = false }),
            ([100, 101], new GenerationOptions { MaxTokens = 15, TopLogprobs = 3, StopAtEos = false }),
            ([3, 1, 4, 1, 5, 9, 2, 6], new GenerationOptions { MaxTokens = 25, LogitBias = new Dictionary<int, double> { [7] = 5 }, StopAtEos = false }),
            ([77, 78, 79, 80], new GenerationOptions { MaxTokens = 30 }),
        };
        var expected = requests.Select(r => alone.Generate(r.Prompt, r.Options, Ct)).ToList();
        // A stop sequence from the middle of a free-running output must cut it there in the batch too.
        var stop = expected[0].Text.Substring(expected[0].Text.Length / 3, 2);
        requests = [.. requests, ([5, 6, 7], new GenerationOptions { MaxTokens = 40, StopAtEos = false, Stop = [stop] })];
        expected.Add(alone.Generate(requests[^1].Prompt, requests[^1].Options, Ct));

        // The first request runs alone for a while; the others join it mid-way.
        var first = batched.StreamAsync(requests[0].Prompt, requests[0].Options, Ct).GetAsyncEnumerator(Ct);
        (await first.MoveNextAsync()).Should().BeTrue();
        var firstTokens = new List<GeneratedToken> { first.Current };
        var rest = requests.Skip(1).Select(r => batched.GenerateAsync(r.Prompt, r.Options, Ct)).ToList();
        while (await first.MoveNextAsync()) firstTokens.Add(first.Current);
        var results = (await Task.WhenAll(rest)).Prepend(new GenerationResult(string.Concat(firstTokens.Select(t => t.Text)), firstTokens, "", 3)).ToList();

        batched.PeakBatch.Should().BeGreaterThan(1, "concurrent requests must share decode steps");
        for (var i = 0; i < requests.Length; i++)
        {
            results[i].Tokens.Select(t => t.Id).Should().Equal(expected[i].Tokens.Select(t => t.Id), $"request {i} must decode as it does alone");
            results[i].Text.Should().Be(expected[i].Text);
            for (var j = 0; j < expected[i].Tokens.Count; j++)
            {
                results[i].Tokens[j].Logprob.Should().BeApproximately(expected[i].Tokens[j].Logprob, 1e-4);
                results[i].Tokens[j].TopLogprobs?.Select(a => a.Id).Should().Equal(expected[i].Tokens[j].TopLogprobs!.Select(a => a.Id));
            }
            if (i > 0) results[i].FinishReason.Should().Be(expected[i].FinishReason);
        }
        results[^1].FinishReason.Should().Be(FinishReasons.Stop);
        results[^1].Text.Should().NotContain(stop);
        batched.FreeTokens.Should().Be(batched.CapacityTokens, "every finished sequence returns its blocks");
    }

    [Fact]
    public async Task GenerateAsync_CacheFull_LaterRequestWaitsForBlocksThenGivesItsTokens()
    {
        using var model = CausalLm.Load(EngineFixtures.Path_("gpt2-tiny"));
        // 64 positions: each request reserves 8 + 40 = 48 of them, so the second cannot start before the first ends.
        using var batched = new BatchedGenerator(model, new BatchingOptions { KvCacheTokens = 64, BlockSize = 16 });
        var options = new GenerationOptions { MaxTokens = 40, StopAtEos = false };
        int[] a = [1, 2, 3, 4, 5, 6, 7, 8], b = [8, 7, 6, 5, 4, 3, 2, 1];

        var both = await Task.WhenAll(batched.GenerateAsync(a, options, Ct), batched.GenerateAsync(b, options, Ct));

        batched.PeakBatch.Should().Be(1, "the cache had room for one of them at a time");
        var alone = new TextGenerator(model);
        both[0].Tokens.Select(t => t.Id).Should().Equal(alone.Generate(a, options, Ct).Tokens.Select(t => t.Id));
        both[1].Tokens.Select(t => t.Id).Should().Equal(alone.Generate(b, options, Ct).Tokens.Select(t => t.Id));
        both.Should().OnlyContain(r => r.Tokens.Count == 40 && r.FinishReason == FinishReasons.Length);
        using var small = new BatchedGenerator(model, new BatchingOptions { KvCacheTokens = 32, BlockSize = 16 });
        var tooLong = () => small.GenerateAsync(a, options, Ct);
        await tooLong.Should().ThrowAsync<ArgumentException>().WithMessage("*key/value cache of 32 positions*");
    }

    [Fact]
    public async Task StreamAsync_CancelledMidway_LeavesTheBatchAndFreesItsBlocks()
    {
        using var model = CausalLm.Create(ModelConfig.Gpt2(512, 64, 2, 2, 2048, dropout: 0), seed: 1);
        using var batched = new BatchedGenerator(model, new BatchingOptions { KvCacheTokens = 4096 });
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var received = 0;

        var consume = async () =>
        {
            await foreach (var _ in batched.StreamAsync([1, 2, 3], new GenerationOptions { MaxTokens = 2000, StopAtEos = false }, cts.Token))
                if (++received == 2) await cts.CancelAsync();
        };

        await consume.Should().ThrowAsync<OperationCanceledException>();
        received.Should().BeLessThan(2000);
        var after = await batched.GenerateAsync([4, 5], new GenerationOptions { MaxTokens = 5, StopAtEos = false }, Ct);
        after.Tokens.Should().HaveCount(5);
        batched.FreeTokens.Should().Be(batched.CapacityTokens);
    }

    [Fact]
    public async Task GenerateAsync_CancelledWhileWaitingForTheCache_ThrowsAndLeavesTheRunningOneAlone()
    {
        using var model = CausalLm.Load(EngineFixtures.Path_("gpt2-tiny"));
        using var batched = new BatchedGenerator(model, new BatchingOptions { KvCacheTokens = 48, BlockSize = 16 });
        var options = new GenerationOptions { MaxTokens = 40, StopAtEos = false };
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);

        var running = batched.GenerateAsync([1, 2, 3], options, Ct);
        var waiting = batched.GenerateAsync([4, 5, 6], options, cts.Token);
        await cts.CancelAsync();

        await waiting.Invoking(t => t).Should().ThrowAsync<OperationCanceledException>();
        (await running).Tokens.Should().HaveCount(40);
        batched.PeakBatch.Should().Be(1);
    }

    [Fact]
    public async Task ScoreAsync_BetweenSteps_EqualsTheSingleGeneratorsScores()
    {
        using var model = CausalLm.Load(EngineFixtures.Path_("qwen2-tiny"));
        using var batched = new BatchedGenerator(model);
        int[] ids = [3, 14, 15, 92, 65];

        var running = batched.GenerateAsync([1, 2], new GenerationOptions { MaxTokens = 30, StopAtEos = false }, Ct);
        var scores = await batched.ScoreAsync(ids, Ct);
        await running;

        var expected = new TextGenerator(model).Score(ids);
        scores.Logprobs[0].Should().BeNull();
        for (var i = 1; i < ids.Length; i++) scores.Logprobs[i]!.Value.Should().BeApproximately(expected.Logprobs[i]!.Value, 1e-6);
    }
}

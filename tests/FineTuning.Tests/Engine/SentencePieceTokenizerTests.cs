using System.Text;
using System.Text.Json.Nodes;
using AspireTune.Engine.Generation;
using AspireTune.Engine.Models;
using AspireTune.Engine.Tokenization;
using AspireTune.Engine.Training;

namespace AspireTune.FineTuning.Tests.Engine;

/// <summary>
/// The byte_fallback BPE tokenizer against the ids and texts of Hugging Face's tokenizers (its JavaScript port, see
/// tools/fixtures/sentencepiece_reference.mjs) over a real 32,000-token SentencePiece vocabulary, in both spellings.
/// </summary>
public sealed class SentencePieceTokenizerTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static List<string> Samples => [.. EngineFixtures.SentencePieceReference["samples"]!.AsArray().Select(s => s!.GetValue<string>())];

    private static List<List<int>> Ids(string variant) =>
        [.. EngineFixtures.SentencePieceReference[variant]!["ids"]!.AsArray().Select(r => r!.AsArray().Select(x => x!.GetValue<int>()).ToList())];

    private static List<string> Decoded(string variant) =>
        [.. EngineFixtures.SentencePieceReference[variant]!["decoded"]!.AsArray().Select(s => s!.GetValue<string>())];

    /// <summary>What newer transformers writes for the same vocabulary: the Metaspace pre-tokenizer and decoder.</summary>
    internal static void MetaspaceSpelling(JsonObject root, bool split = false)
    {
        root["normalizer"] = null;
        root["pre_tokenizer"] = new JsonObject { ["type"] = "Metaspace", ["replacement"] = "\u2581", ["prepend_scheme"] = "first", ["split"] = split };
        root["decoder"] = new JsonObject
        {
            ["type"] = "Sequence",
            ["decoders"] = new JsonArray(
                new JsonObject { ["type"] = "Metaspace", ["replacement"] = "\u2581", ["prepend_scheme"] = "first", ["split"] = split },
                new JsonObject { ["type"] = "ByteFallback" }, new JsonObject { ["type"] = "Fuse" }),
        };
    }

    private static ITokenizer Load(Action<JsonObject>? edit = null) => TokenizerFiles.TryLoad(EngineFixtures.SentencePieceDirectory(edit))!;

    [Fact]
    public void Encode_PublishedTokenizerJson_MatchesHuggingFaceTokenizers()
    {
        var tokenizer = Load();
        var (samples, ids, decoded) = (Samples, Ids("legacy"), Decoded("legacy"));

        tokenizer.Should().BeOfType<SentencePieceBpeTokenizer>();
        samples.Should().HaveCountGreaterThan(300);
        for (var i = 0; i < samples.Count; i++)
        {
            tokenizer.Encode(samples[i]).Should().Equal(ids[i], $"sample {i} '{samples[i]}'");
            tokenizer.Decode(ids[i]).Should().Be(decoded[i], $"sample {i} '{samples[i]}'");
        }
        tokenizer.Count.Should().Be(32000);
        tokenizer.BosTokenId.Should().Be(1);
        tokenizer.EosTokenId.Should().Be(2);
        EngineFixtures.SentencePieceReference["legacy"]!["withSpecialTokens"]!.AsArray().Select(x => x!.GetValue<int>())
            .Should().Equal([tokenizer.BosTokenId!.Value, .. tokenizer.Encode("Hello world")], "the post-processor's <s> is what BosTokenId prepends");
    }

    [Fact]
    public void TryLoad_WithoutTokenizerConfig_TakesBosFromThePostProcessor()
    {
        var dir = EngineFixtures.SentencePieceDirectory();
        File.Delete(Path.Combine(dir, "tokenizer_config.json"));
        var noTemplate = EngineFixtures.SentencePieceDirectory(r => r["post_processor"] = null);
        File.Delete(Path.Combine(noTemplate, "tokenizer_config.json"));

        var tokenizer = TokenizerFiles.TryLoad(dir)!;
        var plain = TokenizerFiles.TryLoad(noTemplate)!;

        tokenizer.BosTokenId.Should().Be(1, "the TemplateProcessing post-processor puts <s> first");
        TokenizerFiles.PrependsBos(dir).Should().BeTrue();
        tokenizer.EosTokenId.Should().Be(2, "</s> is the end-of-text token when no tokenizer_config.json names one");
        plain.BosTokenId.Should().BeNull();
        TokenizerFiles.PrependsBos(noTemplate).Should().BeFalse();
    }

    [Fact]
    public void Decode_SpacesAroundText_StripsOnlyTheFirstSpaceAsHuggingFaceDoes()
    {
        var tokenizer = Load();

        tokenizer.Decode(tokenizer.Encode("  two leading")).Should().Be("  two leading", "Prepend adds one space and Strip removes only that one");
        tokenizer.Decode(tokenizer.Encode("trailing  ")).Should().Be("trailing  ");
        tokenizer.Decode(tokenizer.Encode("A <s> B")).Should().Be("A <s>  B", "the segment after an added token gets its own prepended space");
    }

    [Fact]
    public void Encode_MetaspaceSpelling_MatchesHuggingFaceTokenizers()
    {
        var tokenizer = Load(r => MetaspaceSpelling(r));
        var (samples, ids, decoded, legacy) = (Samples, Ids("metaspace"), Decoded("metaspace"), Ids("legacy"));
        var legacyTokenizer = Load();

        for (var i = 0; i < samples.Count; i++)
        {
            tokenizer.Encode(samples[i]).Should().Equal(ids[i], $"sample {i} '{samples[i]}'");
            // The Rust Metaspace decoder drops every "▁" of the first token; the JavaScript port only a leading space.
            if (ids[i].Count > 0 && legacyTokenizer.Decode([1, ids[i][0]]).Count(c => c == ' ') > 1) continue;
            tokenizer.Decode(ids[i]).Should().Be(decoded[i], $"sample {i} '{samples[i]}'");
        }
        Enumerable.Range(0, samples.Count).Count(i => !ids[i].SequenceEqual(legacy[i])).Should().BeGreaterThan(5,
            "prepend_scheme first prepends no space after an added token nor before a leading space, unlike the Prepend normalizer");
    }

    [Fact]
    public void Decode_MetaspaceFirstTokenOfSeveralMarkers_DropsThemAllAsTheRustDecoderDoes()
    {
        var tokenizer = Load(r => MetaspaceSpelling(r));
        var ids = tokenizer.Encode("\u2581\u2581 two markers");

        ids[0].Should().Be(259, "\"▁▁\" is one token");
        tokenizer.Decode(ids).Should().Be(" two markers", "the first token's markers are dropped, the next token's is a space");
        tokenizer.Decode([1, .. ids]).Should().Be("<s>   two markers", "after <s> every marker is a space");
    }

    [Fact]
    public void Encode_MetaspaceSplitTrue_EncodesEachMarkerLedWordAlone()
    {
        var split = Load(r => MetaspaceSpelling(r, split: true));
        var whole = Load(r => MetaspaceSpelling(r));
        var differs = 0;

        foreach (var s in Samples.Where(s => s.Contains("  ", StringComparison.Ordinal) && !s.Contains('<')))
        {
            var marked = s.Replace(' ', '\u2581');
            if (marked[0] != '\u2581') marked = "\u2581" + marked;
            var words = new List<string>();
            for (int i = 1, start = 0; i <= marked.Length; i++)
                if (i == marked.Length || marked[i] == '\u2581')
                {
                    words.Add(marked[start..i]);
                    start = i;
                }
            var expected = words.SelectMany(whole.Encode).ToList();
            split.Encode(s).Should().Equal(expected, $"'{s}'");
            if (!whole.Encode(s).SequenceEqual(expected)) differs++;
        }
        differs.Should().BeGreaterThan(0, "without the split, runs of spaces merge into one token");
    }

    [Fact]
    public void Encode_MistralV03ControlTokens_AreMatchedBeforeBpe()
    {
        var tokenizer = Load(r =>
        {
            foreach (var (id, content, special) in new[] { (32000, "[INST]", true), (32001, "[/INST]", true), (32002, "<|tool|>", false) })
                r["added_tokens"]!.AsArray().Add(new JsonObject
                {
                    ["id"] = id, ["content"] = content, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
                    ["normalized"] = !special, ["special"] = special,
                });
        });
        var (samples, ids, decoded) = (Samples, Ids("inst"), Decoded("inst"));

        for (var i = 0; i < samples.Count; i++)
        {
            tokenizer.Encode(samples[i]).Should().Equal(ids[i], $"sample {i} '{samples[i]}'");
            tokenizer.Decode(ids[i]).Should().Be(decoded[i], $"sample {i} '{samples[i]}'");
        }
        tokenizer.Encode("[INST] Hi [/INST]").Should().Contain([32000, 32001]);
        // A normalized added token is found in the normalized text, "▁" included: after a space, not glued to a word.
        tokenizer.Encode("call <|tool|> now").Should().Equal(1034, 32002, 1055);
        tokenizer.Encode("glued<|tool|>text").Should().NotContain(32002);
        tokenizer.Count.Should().Be(32003);
    }

    [Fact]
    public void Encode_ByteTokenMissing_FallsBackToOneFusedUnknownToken()
    {
        var tokenizer = Load(r => r["model"]!["vocab"]!.AsObject().Remove("<0xF0>"));
        var (samples, ids, decoded) = (Samples, Ids("unk"), Decoded("unk"));

        for (var i = 0; i < samples.Count; i++)
        {
            tokenizer.Encode(samples[i]).Should().Equal(ids[i], $"sample {i} '{samples[i]}'");
            tokenizer.Decode(ids[i]).Should().Be(decoded[i], $"sample {i} '{samples[i]}'");
        }
        tokenizer.Encode("Ab\U0001F9EC\U0001F9EC cd").Should().Equal([2484, 0, 19958], "two characters that need <0xF0> are one <unk> (fuse_unk)");
    }

    [Fact]
    public void Encode_CharactersOutsideTheVocabulary_FallBackToTheirUtf8Bytes()
    {
        var tokenizer = Load();
        const string text = "\U0001F9EC";

        var ids = tokenizer.Encode(text);

        // "▁" then the four bytes of U+1F9EC as <0xF0> <0x9F> <0xA7> <0xAC> (byte b is id 3 + b).
        ids.Skip(1).Should().Equal(3 + 0xF0, 3 + 0x9F, 3 + 0xA7, 3 + 0xAC);
        tokenizer.Decode(ids).Should().Be(text);
        tokenizer.Decode([3 + 0xF0, 3 + 0x9F, 22557]).Should().Be("\uFFFD\uFFFD Hello", "an invalid byte run decodes to one U+FFFD per byte");
        tokenizer.TokenBytes(3 + 0xA7).Should().Equal((byte)0xA7);
        tokenizer.TokenBytes(22557).Should().Equal(Encoding.UTF8.GetBytes(" Hello"), "a streamed piece keeps the space its marker stands for");
        tokenizer.TokenBytes(1).Should().Equal(Encoding.UTF8.GetBytes("<s>"));
    }

    [Fact]
    public void StreamingText_CharacterSplitAcrossByteTokens_IsReleasedOnceWhole()
    {
        var tokenizer = Load();
        var ids = tokenizer.Encode("ok \U0001F9EC done");
        var text = new StreamingText([]);

        var released = ids.Select(id => text.Push(tokenizer.TokenBytes(id)).Released).ToList();

        string.Concat(released).Should().Be(" ok \U0001F9EC done", "streamed pieces continue a text, so the first keeps its space");
        released.Should().ContainSingle(r => r.Contains("\U0001F9EC", StringComparison.Ordinal));
        released.Count(r => r.Length == 0).Should().Be(3, "the first three bytes of the character release nothing");
    }

    [Fact]
    public async Task Load_LlamaShapedCheckpoint_GeneratesAndStreamsWithTheSentencePieceTokenizer()
    {
        var source = EngineFixtures.SentencePieceDirectory();
        var tokenizer = TokenizerFiles.TryLoad(source)!;
        var dir = EngineFixtures.TempDirectory();
        using (var fresh = CausalLm.Create(ModelConfig.Llama(32000, 16, 1, 2, 1, 32, 64, tie: true) with { BosTokenId = 1, EosTokenId = 2 }, tokenizer, seed: 4))
            fresh.Save(dir);

        using var model = CausalLm.Load(dir);
        var generator = new TextGenerator(model);
        var prompt = generator.EncodePrompt("Hello world");
        var options = new GenerationOptions { MaxTokens = 8, Temperature = 0.9, Seed = 5, StopAtEos = false };
        var whole = generator.Generate(prompt, options, Ct);
        var streamed = new List<GeneratedToken>();
        await foreach (var t in generator.StreamAsync(prompt, options, Ct)) streamed.Add(t);

        model.Tokenizer.Should().BeOfType<SentencePieceBpeTokenizer>();
        File.Exists(Path.Combine(dir, "tokenizer.json")).Should().BeTrue();
        TokenizerFiles.PrependsBos(dir).Should().BeTrue();
        prompt.Should().Equal(1, 22557, 1526);
        whole.Tokens.Should().HaveCount(8).And.OnlyContain(t => t.Id >= 0 && t.Id < 32000);
        string.Concat(streamed.Select(t => t.Text)).Should().Be(whole.Text);
        model.Tokenizer!.Decode([.. prompt, .. whole.Tokens.Select(t => t.Id)]).Should().Be("<s> Hello world" + whole.Text);
    }

    [Fact]
    public void SftDataEncode_CompletionAfterItsPrompt_GetsTheIdsOfTheWholeText()
    {
        var tokenizer = Load();
        SftExample[] examples = [new("[INST] Hi [/INST]", " Hello!"), new("A: ", "yes"), new("", "Alone")];

        var seqs = SftData.Encode(examples, tokenizer, 64, "training");

        // As TRL tokenizes prompt + completion: no "▁" token of its own at the completion's start.
        seqs[0].Ids.Should().Equal([1, .. tokenizer.Encode("[INST] Hi [/INST] Hello!"), 2]);
        seqs[0].Ids[seqs[0].PromptLength].Should().Be(22557, "\"▁Hello\" follows the prompt, not \"▁\" then \"▁Hello\"");
        tokenizer.Encode(" Hello!")[0].Should().Be(28705, "encoded alone, the completion would start with a marker of its own");
        // "▁A:▁" + "yes": a merge would cross the boundary, so the completion continues the text without a marker.
        tokenizer.Decode(seqs[1].Ids[1..^1]).Should().Be("A: yes");
        var yes = seqs[1].Ids[seqs[1].PromptLength..^1];
        tokenizer.Decode([1, .. yes]).Should().Be("<s>yes", "the completion's own start carries no marker");
        yes.Should().NotEqual(tokenizer.Encode("yes"));
        seqs[2].Ids.Should().Equal([1, .. tokenizer.Encode("Alone"), 2]);
    }

    public static TheoryData<string, string> Malformed => new()
    {
        { "no-bytes", "no <0xNN> byte tokens" },
        { "unknown-merge", "names 'qqqzzz', which is not in the vocabulary" },
        { "normalizer", "normalizer 'Precompiled' is not supported" },
        { "pre-tokenizer", "pre_tokenizer 'Whitespace' is not supported" },
        { "decoder", "decoder 'WordPiece' is not supported" },
        { "unk", "unk_token '<nope>' is not in the vocabulary" },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public void TryLoad_MalformedTokenizerJson_NamesTheFileAndTheProblem(string fault, string message)
    {
        var dir = EngineFixtures.SentencePieceDirectory(r =>
        {
            var model = r["model"]!.AsObject();
            switch (fault)
            {
                case "no-bytes":
                    foreach (var b in Enumerable.Range(0, 256)) model["vocab"]!.AsObject().Remove($"<0x{b:X2}>");
                    break;
                case "unknown-merge": model["merges"]!.AsArray().Add("\u2581t qqqzzz"); break;
                case "normalizer": r["normalizer"] = new JsonObject { ["type"] = "Precompiled" }; break;
                case "pre-tokenizer": r["pre_tokenizer"] = new JsonObject { ["type"] = "Whitespace" }; break;
                case "decoder": r["decoder"] = new JsonObject { ["type"] = "WordPiece" }; break;
                default: model["unk_token"] = "<nope>"; break;
            }
        });

        var act = () => TokenizerFiles.TryLoad(dir);

        act.Should().Throw<ModelFormatException>().WithMessage($"{Path.Combine(dir, "tokenizer.json")}: *{message}*")
            .Which.File.Should().Be(Path.Combine(dir, "tokenizer.json"));
    }

    [Fact]
    public void Load_CheckpointWithMalformedTokenizer_FailsBeforeTheModelIsBuilt()
    {
        var dir = EngineFixtures.SentencePieceDirectory(r => r["decoder"] = new JsonObject { ["type"] = "CTC" });
        using (var fresh = CausalLm.Create(ModelConfig.Llama(32000, 8, 1, 2, 1, 16, 16)))
            fresh.Save(dir); // no tokenizer of its own: the folder keeps the malformed tokenizer.json

        var act = () => CausalLm.Load(dir);

        act.Should().Throw<ModelFormatException>().WithMessage("*tokenizer.json: decoder 'CTC' is not supported*");
    }

    [Theory]
    [InlineData("k")]
    [InlineData("\U0001F9EC")]
    [InlineData("ab")]
    public async Task Encode_MegabyteWithoutSpaces_IsNotQuadraticAndRoundTrips(string unit)
    {
        var tokenizer = Load();
        var text = "start " + string.Concat(Enumerable.Repeat(unit, 1024 * 1024 / unit.Length)) + " end";

        // Not a speed assertion: a quadratic merge loop (minutes) fails here, within the bound the byte-level tokenizer's test uses.
        var ids = await Task.Run(() => tokenizer.Encode(text), Ct).WaitAsync(TimeSpan.FromSeconds(60), Ct);

        tokenizer.Decode(ids).Should().Be(text);
    }
}

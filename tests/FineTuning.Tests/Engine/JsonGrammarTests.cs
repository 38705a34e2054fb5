using System.Text;
using System.Text.Json.Nodes;
using AspireTune.Engine.Generation;
using AspireTune.Engine.Tokenization;

namespace AspireTune.FineTuning.Tests.Engine;

public sealed class JsonGrammarTests
{
    private static readonly JsonNode Schema = JsonNode.Parse("""
        {"type":"object","properties":{
          "label":{"enum":["positive","negative"]},
          "score":{"type":"integer"},
          "ratio":{"type":"number"},
          "tags":{"type":"array","items":{"type":"string","maxLength":3},"maxItems":2},
          "note":{"type":["string","null"]},
          "extra":{"type":"boolean"},
          "child":{"$ref":"#/$defs/node"}},
         "required":["label","score","ratio","tags","note","child"],
         "additionalProperties":false,
         "$defs":{"node":{"type":"object","properties":{"next":{"anyOf":[{"$ref":"#/$defs/node"},{"type":"null"}]}},"required":["next"]}}}
        """)!;

    private static bool Accepts(JsonGrammar grammar, string text, bool complete = true) =>
        grammar.Start().Advance(Encoding.UTF8.GetBytes(text)) is { } state && state.IsComplete == complete;

    [Theory]
    [InlineData("""{"label":"positive","score":-12,"ratio":0.5e-3,"tags":["a","é€"],"note":null,"child":{"next":{"next":null}}}""")]
    [InlineData("""{"label":"negative","score":0,"ratio":3,"tags":[],"note":"line\nbreak \u00e9","extra":true,"child":{"next":null}}""")]
    public void Schema_ValidCompactJson_IsAcceptedAndComplete(string json) =>
        Accepts(JsonGrammar.FromSchema(Schema), json).Should().BeTrue();

    [Theory]
    [InlineData("""{"label":"neutral""", "not in the enum")]
    [InlineData("""{"score":1""", "label is required and comes first")]
    [InlineData("""{"label":"positive","score":1.5""", "score is an integer")]
    [InlineData("""{"label":"positive","score":01""", "no leading zeros")]
    [InlineData("""{"label":"positive","score":1,"ratio":1,"tags":["abcd""", "maxLength 3")]
    [InlineData("""{"label":"positive","score":1,"ratio":1,"tags":["a","b","c""", "maxItems 2")]
    [InlineData("""{"label":"positive","score":1,"ratio":1,"tags":[],"note":"\ud800""", "a lone surrogate escape")]
    [InlineData("{\"label\":\"positive\",\"score\":1,\"ratio\":1,\"tags\":[],\"note\":\"a\t", "a raw control character")]
    [InlineData("""{ "label""", "no whitespace between tokens")]
    [InlineData("""{"label":"positive","score":1,"ratio":1,"tags":[],"note":null,"child":{"next":null},"x""", "no undeclared property")]
    public void Schema_InvalidOrUnexpectedBytes_AreRejected(string prefix, string why) =>
        JsonGrammar.FromSchema(Schema).Start().Advance(Encoding.UTF8.GetBytes(prefix)).Should().BeNull(why);

    [Fact]
    public void Schema_InvalidUtf8_IsRejectedInsideStrings()
    {
        var state = JsonGrammar.FromSchema(Schema).Start().Advance("{\"label\":\"positive\",\"score\":1,\"ratio\":1,\"tags\":[],\"note\":\""u8)!;

        state.Advance([0xC3, 0xA9]).Should().NotBeNull("é is two valid bytes");
        state.Advance([0xC3, 0x41]).Should().BeNull("a lead byte needs a continuation byte");
        state.Advance([0x80]).Should().BeNull("a continuation byte cannot start a character");
        state.Advance([0xE0, 0x80]).Should().BeNull("an overlong three-byte form");
        state.Advance([0xED, 0xA0]).Should().BeNull("a UTF-16 surrogate encoded in UTF-8");
        state.Advance([0xF4, 0x90]).Should().BeNull("above U+10FFFF");
        state.Advance([0xF0, 0x9F, 0x98, 0x80]).Should().NotBeNull("an emoji is four valid bytes");
    }

    [Fact]
    public void AnyObject_NestedValues_AcceptedButNotAScalarRoot()
    {
        var grammar = JsonGrammar.AnyObject();

        Accepts(grammar, """{"a":[1,-2.5,{"b":null}],"c":"d","e":{}}""").Should().BeTrue();
        Accepts(grammar, "{}").Should().BeTrue();
        grammar.Start().Advance("[1]"u8).Should().BeNull();
        grammar.Start().Advance("\"x\""u8).Should().BeNull();
    }

    [Theory]
    [InlineData("""{"type":"string","pattern":"^a$"}""", "schema.pattern")]
    [InlineData("""{"type":"object","properties":{"n":{"type":"integer","minimum":0}}}""", "schema.properties.n.minimum")]
    [InlineData("""{"type":"object","properties":{"n":{"$ref":"http://example.com/x"}}}""", "schema.properties.n.$ref")]
    [InlineData("""{"type":"object","required":["missing"],"properties":{}}""", "schema.required")]
    public void Schema_UnsupportedKeyword_ThrowsNamingItsPath(string schema, string path) =>
        FluentActions.Invoking(() => JsonGrammar.FromSchema(JsonNode.Parse(schema)!)).Should().Throw<UnsupportedSchemaException>().Which.Path.Should().Be(path);

    [Fact]
    public void ToolCall_TwoTools_AcceptsEitherNameWithItsOwnArguments()
    {
        var grammar = JsonGrammar.ToolCall([
            ("get_weather", JsonNode.Parse("""{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}""")),
            ("noop", null),
        ]);

        Accepts(grammar, """{"name":"get_weather","arguments":{"city":"Oslo"}}""").Should().BeTrue();
        Accepts(grammar, """{"name":"noop","arguments":{}}""").Should().BeTrue();
        grammar.Start().Advance("{\"name\":\"noop\",\"arguments\":{\"city\""u8).Should().BeNull("noop takes no arguments");
        grammar.Start().Advance("""{"name":"other"""u8).Should().BeNull();
    }

    [Fact]
    public void Mask_Gpt2Vocabulary_AllowsExactlyTheTokensWhoseBytesTheGrammarAccepts()
    {
        var dir = EngineFixtures.Gpt2VocabularyDirectory;
        var tokenizer = ByteLevelBpeTokenizer.FromVocabAndMerges(Path.Combine(dir, "encoder.json"), Path.Combine(dir, "vocab.bpe"));
        var grammar = JsonGrammar.FromSchema(Schema);
        var constraint = new JsonTokenConstraint(grammar, TokenTrie.For(tokenizer, tokenizer.Count), tokenizer);
        foreach (var id in tokenizer.Encode("{\"label\":\"pos"))
            constraint.Accept(id);
        var state = grammar.Start().Advance("{\"label\":\"pos"u8)!;
        var allowed = new bool[tokenizer.Count];

        constraint.Allowed(allowed);

        var expected = Enumerable.Range(0, tokenizer.Count).Where(id => id != tokenizer.EosTokenId && state.Advance(tokenizer.TokenBytes(id)) is not null).ToList();
        Enumerable.Range(0, tokenizer.Count).Where(id => allowed[id]).Should().Equal(expected);
        expected.Select(id => tokenizer.Decode([id])).Should().Contain(["it", "i"]).And.NotContain("ative");
    }

    [Fact]
    public void Triggered_FreeTextOrTriggerThenGrammar_DecidesOnTheFirstBytes()
    {
        var tokenizer = ByteLevelBpeTokenizer.CreateByteLevel();
        var trie = TokenTrie.For(tokenizer, tokenizer.Count);
        var grammar = JsonGrammar.ToolCall([("noop", null)]);
        var allowed = new bool[tokenizer.Count];

        var free = new TriggeredJsonConstraint("<tool_call>"u8.ToArray(), grammar, trie, tokenizer);
        free.Accept('H');
        free.Allowed(allowed);
        var freeAllowsAll = allowed.All(a => a);

        var call = new TriggeredJsonConstraint("<tool_call>"u8.ToArray(), grammar, trie, tokenizer);
        foreach (var b in "<tool_call>{\"name\":\"noop\",\"arguments\":{"u8.ToArray())
        {
            call.Allowed(allowed);
            allowed[b].Should().BeTrue($"'{(char)b}' continues the trigger or the call");
            call.Accept(b);
        }
        call.Allowed(allowed);

        freeAllowsAll.Should().BeTrue("output that leaves the trigger is free text");
        call.Triggered.Should().BeTrue();
        Enumerable.Range(0, tokenizer.Count).Where(id => allowed[id]).Should().Equal([(int)'}']);
        call.Accept('}');
        call.Allowed(allowed);
        call.IsComplete.Should().BeFalse("the outer object is still open");
        allowed['}'].Should().BeTrue();
        call.Accept('}');
        call.IsComplete.Should().BeTrue();
    }
}

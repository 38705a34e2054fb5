using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using AspireTune.Engine.Models;
using AspireTune.Engine.Tokenization;
using AspireTune.FineTuning.Tests.Engine;

namespace AspireTune.FineTuning.Tests;

/// <summary>A Llama-shaped checkpoint with a SentencePiece-style tokenizer.json, imported and served through /v1.</summary>
[Collection(TrainingCollection.Name)]
public sealed class SentencePieceServingTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ImportedCheckpoint_WithByteFallbackTokenizer_TokenizesAndChatsThroughV1()
    {
        await using var factory = new FineTuningFactory();
        var http = factory.CreateClient();
        var source = EngineFixtures.SentencePieceDirectory();
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "tokenizer_config.json")))!.AsObject();
        config["chat_template"] = File.ReadAllText(EngineFixtures.Path_(Path.Combine("chat-templates", "mistral-7b-instruct-v0.3.jinja")));
        File.WriteAllText(Path.Combine(source, "tokenizer_config.json"), config.ToJsonString());
        var tokenizer = TokenizerFiles.TryLoad(source)!;
        var target = Path.Combine(factory.DataFolder, "imports", "sp-llama");
        using (var model = CausalLm.Create(ModelConfig.Llama(32000, 16, 1, 2, 1, 32, 128, tie: true) with { BosTokenId = 1, EosTokenId = 2 }, tokenizer, seed: 2))
            model.Save(target);

        var imported = await http.PostAsJsonAsync("/api/models/import", new { path = "imports/sp-llama", name = "sp-llama" }, Ct);
        imported.StatusCode.Should().Be(HttpStatusCode.Created, await imported.Content.ReadAsStringAsync(Ct));
        var messages = new[] { new { role = "user", content = "Hello 😀" } };
        var tokenized = await (await http.PostAsJsonAsync("/v1/tokenize", new { model = "sp-llama", messages }, Ct)).Content.ReadFromJsonAsync<JsonElement>(Ct);
        var chat = await http.PostAsJsonAsync("/v1/chat/completions", new { model = "sp-llama", messages, max_tokens = 6, temperature = 0.9, seed = 3 }, Ct);
        var body = await chat.Content.ReadFromJsonAsync<JsonElement>(Ct);

        // Mistral's template writes "<s>[INST] ...[/INST]"; its <s> is the one the tokenizer prepends, as transformers gives it.
        tokenized.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()).Should().Equal([1, .. tokenizer.Encode("[INST] Hello 😀[/INST]")]);
        tokenized.GetProperty("eos_token_id").GetInt32().Should().Be(2);
        chat.StatusCode.Should().Be(HttpStatusCode.OK, body.ToString());
        body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32().Should().Be(tokenized.GetProperty("count").GetInt32());
        body.GetProperty("usage").GetProperty("completion_tokens").GetInt32().Should().BeInRange(1, 6);
        body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString().Should().NotBeNull();
    }
}

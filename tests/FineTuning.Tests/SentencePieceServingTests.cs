using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using AspireTune.Engine.Models;
using AspireTune.Engine.Tokenization;
using AspireTune.FineTuning.Tests.Engine;

namespace AspireTune.FineTuning.Tests;

/// <summary>A Llama-shaped checkpoint with a SentencePiece-style tokenizer.json (and Mistral v0.3's or Llama 2's chat template), imported and served through /v1.</summary>
[Collection(TrainingCollection.Name)]
public sealed class SentencePieceServingTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>
    /// Imports a one-layer Llama over the 32,000-token SentencePiece vocabulary (Llama 2's) as <paramref name="name"/>,
    /// with the chat template of Fixtures/chat-templates/<paramref name="template"/>.
    /// </summary>
    private static async Task<ITokenizer> ImportAsync(FineTuningFactory factory, HttpClient http, string template = "mistral-7b-instruct-v0.3.jinja", string name = "sp-llama")
    {
        var source = EngineFixtures.SentencePieceDirectory();
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "tokenizer_config.json")))!.AsObject();
        config["chat_template"] = File.ReadAllText(EngineFixtures.Path_(Path.Combine("chat-templates", template)));
        File.WriteAllText(Path.Combine(source, "tokenizer_config.json"), config.ToJsonString());
        var tokenizer = TokenizerFiles.TryLoad(source)!;
        var target = Path.Combine(factory.DataFolder, "imports", name);
        using (var model = CausalLm.Create(ModelConfig.Llama(32000, 16, 1, 2, 1, 32, 128, tie: true) with { BosTokenId = 1, EosTokenId = 2 }, tokenizer, seed: 2))
            model.Save(target);

        var imported = await http.PostAsJsonAsync("/api/models/import", new { path = $"imports/{name}", name }, Ct);
        imported.StatusCode.Should().Be(HttpStatusCode.Created, await imported.Content.ReadAsStringAsync(Ct));
        return tokenizer;
    }

    [Fact]
    public async Task ImportedCheckpoint_WithByteFallbackTokenizer_TokenizesAndChatsThroughV1()
    {
        await using var factory = new FineTuningFactory();
        var http = factory.CreateClient();
        var tokenizer = await ImportAsync(factory, http);
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

    [Fact]
    public async Task ImportedCheckpoint_WithLlama2ChatTemplate_ChatsWithIt()
    {
        await using var factory = new FineTuningFactory();
        var http = factory.CreateClient();
        var tokenizer = await ImportAsync(factory, http, "llama-2-chat.jinja", "sp-llama2");
        var messages = new[]
        {
            new { role = "system", content = "Be brief." }, new { role = "user", content = " Hi " },
            new { role = "assistant", content = "Hello!" }, new { role = "user", content = "Bye" },
        };
        var tokenized = await (await http.PostAsJsonAsync("/v1/tokenize", new { model = "sp-llama2", messages }, Ct)).Content.ReadFromJsonAsync<JsonElement>(Ct);
        var chat = await http.PostAsJsonAsync("/v1/chat/completions", new { model = "sp-llama2", messages, max_tokens = 4, seed = 1 }, Ct);
        var body = await chat.Content.ReadFromJsonAsync<JsonElement>(Ct);

        // "<s>[INST] <<SYS>>\n...\n<</SYS>>\n\n Hi [/INST] Hello! </s><s>[INST] Bye [/INST]": strip() trims the system block
        // and the first turn together, so " Hi" keeps its space; the first <s> is the one the tokenizer prepends, the later
        // </s><s> are the special tokens, the text after them starting a new "▁" word.
        tokenized.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()).Should().Equal(
            [1, .. tokenizer.Encode("[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n Hi [/INST] Hello! "), 2, 1, .. tokenizer.Encode("[INST] Bye [/INST]")]);
        chat.StatusCode.Should().Be(HttpStatusCode.OK, body.ToString());
        body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32().Should().Be(tokenized.GetProperty("count").GetInt32());
    }

    [Theory]
    [InlineData("llama-2-chat.jinja", "user user", "Conversation roles must alternate user/assistant/user/assistant/...")]
    [InlineData("mistral-7b-instruct-v0.1.jinja", "system user", "Conversation roles must alternate user/assistant/user/assistant/...")]
    [InlineData("gemma-it.jinja", "system user", "System role not supported")]
    public async Task ImportedCheckpoint_ConversationItsTemplateRefuses_Is400WithTheTemplatesMessage(string template, string roles, string refusal)
    {
        await using var factory = new FineTuningFactory();
        var http = factory.CreateClient();
        await ImportAsync(factory, http, template, "sp-refuses");
        var accepted = await http.PostAsJsonAsync("/v1/chat/completions", new { model = "sp-refuses", messages = new[] { new { role = "user", content = "Hi" } }, max_tokens = 2 }, Ct);
        var messages = roles.Split(' ').Select(r => new { role = r, content = "Hi" });

        var refused = await http.PostAsJsonAsync("/v1/chat/completions", new { model = "sp-refuses", messages, max_tokens = 2 }, Ct);

        accepted.StatusCode.Should().Be(HttpStatusCode.OK, await accepted.Content.ReadAsStringAsync(Ct));
        refused.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        var error = (await refused.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error");
        error.GetProperty("param").GetString().Should().Be("messages");
        error.GetProperty("message").GetString().Should().Be("the chat template refused the conversation: " + refusal);
    }

    [Fact]
    public async Task ImportedCheckpoint_WithLlama2ChatTemplate_FailsAJobOnALineTheTemplateRefuses()
    {
        await using var factory = new FineTuningFactory();
        var http = factory.CreateClient();
        await ImportAsync(factory, http, "llama-2-chat.jinja", "sp-llama2");
        string Line(int n, params string[] roles) => JsonSerializer.Serialize(new { messages = roles.Select(r => new { role = r, content = $"{r} {n}" }) });
        var lines = Enumerable.Range(0, 12).Select(n => Line(n, "user", "assistant")).ToList();
        lines[4] = Line(4, "user", "user", "assistant");

        var job = await ChatTemplateServingTests.TrainOneEpochAsync(http, "sp-llama2", lines);

        job.GetProperty("status").GetString().Should().Be("failed", job.ToString());
        job.GetProperty("error").GetProperty("code").GetString().Should().Be("invalid_chat_template");
        job.GetProperty("error").GetProperty("message").GetString().Should().Be("The base model's chat template cannot render the training data: "
            + "line 5: the chat template refused the conversation: Conversation roles must alternate user/assistant/user/assistant/...");
    }

    [Fact]
    public async Task ImportedCheckpoint_WithByteFallbackTokenizer_FineTunesAndKeepsItsTokenizer()
    {
        await using var factory = new FineTuningFactory();
        var http = factory.CreateClient();
        var tokenizer = await ImportAsync(factory, http);
        string[] words = ["red", "blue", "green", "gold", "grey", "pink", "teal", "navy", "lime", "plum", "rose", "sand"];
        var lines = words.Select((w, i) => JsonSerializer.Serialize(new { prompt = $"{w} {i}", completion = i % 2 == 0 ? "yes" : "no" })).ToList();

        var job = await ChatTemplateServingTests.TrainOneEpochAsync(http, "sp-llama", lines);
        var fineTuned = job.GetProperty("fine_tuned_model").GetString()!;
        var tokenized = await (await http.PostAsJsonAsync("/v1/tokenize", new { model = fineTuned, prompt = "Hello 😀" }, Ct)).Content.ReadFromJsonAsync<JsonElement>(Ct);

        job.GetProperty("status").GetString().Should().Be("succeeded", job.ToString());
        // Each example once: <s>, "[INST] prompt[/INST]", the answer as it follows the prompt (Mistral's template
        // writes " yes"/" no": one "▁yes" token, no marker of its own), and </s>.
        var expected = words.Select((w, i) => 1 + tokenizer.Encode($"[INST] {w} {i}[/INST]").Count
            + tokenizer.EncodeCompletion($"[INST] {w} {i}[/INST]", i % 2 == 0 ? " yes" : " no").Count + 1).Sum();
        tokenizer.EncodeCompletion("[INST] red 0[/INST]", " yes").Should().HaveCount(1);
        job.GetProperty("trained_tokens").GetInt64().Should().Be(expected);
        tokenized.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()).Should().Equal([1, .. tokenizer.Encode("Hello 😀")],
            "the fine-tuned model keeps its base's tokenizer files");
    }
}

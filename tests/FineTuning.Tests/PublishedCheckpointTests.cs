using System.IO.Compression;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using AspireTune.Engine.Checkpoints;
using AspireTune.Engine.Models;
using AspireTune.FineTuning.Serving;
using AspireTune.FineTuning.Tests.Engine;
using static AspireTune.FineTuning.Tests.PublishedCheckpoints;

namespace AspireTune.FineTuning.Tests;

/// <summary>
/// Checkpoints laid out as Hugging Face publishes Llama-3.2-1B-Instruct and TinyLlama-1.1B-Chat (see
/// <see cref="PublishedCheckpoints"/>), imported through the API, served through /v1, fine-tuned (LoRA and full) and
/// saved back in the layout a transformers user expects.
/// </summary>
[Collection(TrainingCollection.Name)]
public sealed class PublishedCheckpointTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static readonly object[] Hello = [new { role = "system", content = "Be brief." }, new { role = "user", content = "Hello there" }];

    /// <summary>Builds the family's folder in the data folder and imports it as <paramref name="family"/>.</summary>
    private static async Task<string> ImportAsync(FineTuningFactory factory, HttpClient http, string family, int vocabSize = BeginOfText + 12)
    {
        var target = family == "llama32" ? Path.Combine(factory.DataFolder, "imports", family) : EngineFixtures.SentencePieceDirectory();
        if (family == "llama32")
            Llama32Instruct(target, vocabSize: vocabSize);
        else
        {
            TinyLlamaChat(target);
            var moved = Path.Combine(factory.DataFolder, "imports", family);
            Directory.CreateDirectory(Path.GetDirectoryName(moved)!);
            Directory.Move(target, moved);
            target = moved;
        }
        var imported = await http.PostAsJsonAsync("/api/models/import", new { path = $"imports/{family}", name = family }, Ct);
        imported.StatusCode.Should().Be(HttpStatusCode.Created, await imported.Content.ReadAsStringAsync(Ct));
        return target;
    }

    private static async Task<JsonElement> PostAsync(HttpClient http, string path, object body)
    {
        var response = await http.PostAsJsonAsync(path, body, Ct);
        var json = await response.Content.ReadFromJsonAsync<JsonElement>(Ct);
        response.StatusCode.Should().Be(HttpStatusCode.OK, json.ToString());
        return json;
    }

    /// <summary>A greedy chat whose first pick is forced to <paramref name="token"/> by logit_bias.</summary>
    private static Task<JsonElement> ChatForcingAsync(HttpClient http, string model, int token) =>
        PostAsync(http, "/v1/chat/completions", new { model, messages = Hello, max_tokens = 5, temperature = 0, logit_bias = new Dictionary<string, int> { [token.ToString(System.Globalization.CultureInfo.InvariantCulture)] = 100 } });

    [Fact]
    public async Task Llama32Instruct_ImportedAsPublished_ServesWithItsTemplateAndStopsOnEveryEosOfGenerationConfig()
    {
        await using var factory = new FineTuningFactory();
        var http = factory.CreateClient();
        await ImportAsync(factory, http, "llama32");

        var listed = (await Api.GetJsonAsync(http, "/v1/models")).GetProperty("data").EnumerateArray().Single(m => m.GetProperty("id").GetString() == "llama32");
        var tokenized = await PostAsync(http, "/v1/tokenize", new { model = "llama32", messages = Hello });
        var free = await PostAsync(http, "/v1/chat/completions", new { model = "llama32", messages = Hello, max_tokens = 4, temperature = 0 });
        var atEndOfTurn = await ChatForcingAsync(http, "llama32", EndOfTurn);
        var atEndOfMessage = await ChatForcingAsync(http, "llama32", EndOfMessage);
        var atEndOfText = await ChatForcingAsync(http, "llama32", EndOfText);
        var atHeader = await ChatForcingAsync(http, "llama32", StartHeader);
        var streamed = await StreamAsync(http, new { model = "llama32", messages = Hello, max_tokens = 5, temperature = 0, stream = true, logit_bias = new Dictionary<string, int> { ["308"] = 100 } });
        var echoed = await PostAsync(http, "/v1/completions", new { model = "llama32", prompt = "Hello world", max_tokens = 2, temperature = 0, echo = true, logprobs = 1 });

        listed.GetProperty("max_model_len").GetInt32().Should().Be(Llama32Context);
        var ids = tokenized.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()).ToList();
        ids[0].Should().Be(BeginOfText);
        ids.Count(i => i == BeginOfText).Should().Be(1, "the template writes <|begin_of_text|> and the tokenizer does not add a second");
        ids.Count(i => i == StartHeader).Should().Be(3, "system, user and the assistant's generation prompt");
        ids.Count(i => i == EndOfTurn).Should().Be(2);
        tokenized.GetProperty("eos_token_id").GetInt32().Should().Be(EndOfTurn);
        free.GetProperty("usage").GetProperty("prompt_tokens").GetInt32().Should().Be(ids.Count);
        foreach (var stopped in new[] { atEndOfTurn, atEndOfMessage, atEndOfText })
        {
            stopped.GetProperty("choices")[0].GetProperty("finish_reason").GetString().Should().Be("stop", stopped.ToString());
            stopped.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString().Should().BeEmpty();
        }
        atHeader.GetProperty("choices")[0].GetProperty("finish_reason").GetString().Should().Be("length", "<|start_header_id|> is not an end of generation");
        streamed.Finish.Should().Be("stop");
        streamed.Text.Should().BeEmpty();
        var choice = echoed.GetProperty("choices")[0];
        choice.GetProperty("text").GetString().Should().StartWith("<|begin_of_text|>Hello world");
        var logprobs = choice.GetProperty("logprobs").GetProperty("token_logprobs").EnumerateArray().ToList();
        logprobs[0].ValueKind.Should().Be(JsonValueKind.Null, "nothing precedes the first token");
        logprobs.Skip(1).Should().OnlyContain(l => l.ValueKind == JsonValueKind.Number && l.GetDouble() <= 0);
        logprobs.Should().HaveCount(echoed.GetProperty("usage").GetProperty("prompt_tokens").GetInt32() + 2);
        // Byte-level tokens spell the text exactly: each echoed token is found at its offset.
        var text = choice.GetProperty("text").GetString()!;
        var tokens = choice.GetProperty("logprobs").GetProperty("tokens").EnumerateArray().Select(t => t.GetString()!).ToList();
        Offsets(choice).Zip(tokens).Take(logprobs.Count - 2).Should().OnlyContain(p => string.CompareOrdinal(text, p.First, p.Second, 0, p.Second.Length) == 0, text);
    }

    [Fact]
    public async Task TinyLlamaChat_ImportedAsPublished_ServesWithItsTemplateAndStopsOnItsEos()
    {
        await using var factory = new FineTuningFactory();
        var http = factory.CreateClient();
        await ImportAsync(factory, http, "tinyllama");

        var listed = (await Api.GetJsonAsync(http, "/v1/models")).GetProperty("data").EnumerateArray().Single(m => m.GetProperty("id").GetString() == "tinyllama");
        var tokenized = await PostAsync(http, "/v1/tokenize", new { model = "tinyllama", messages = Hello });
        var stopped = await ChatForcingAsync(http, "tinyllama", 2);
        var streamed = await StreamAsync(http, new { model = "tinyllama", messages = Hello, max_tokens = 5, temperature = 0, stream = true, logit_bias = new Dictionary<string, int> { ["2"] = 100 } });
        var echoed = await PostAsync(http, "/v1/completions", new { model = "tinyllama", prompt = "Hello world", max_tokens = 2, temperature = 0, echo = true, logprobs = 1 });

        listed.GetProperty("max_model_len").GetInt32().Should().Be(2048);
        var ids = tokenized.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()).ToList();
        ids[0].Should().Be(1, "the tokenizer prepends <s>");
        ids.Count(i => i == 2).Should().Be(2, "the template closes the system and user turns with </s>");
        stopped.GetProperty("choices")[0].GetProperty("finish_reason").GetString().Should().Be("stop", stopped.ToString());
        stopped.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString().Should().BeEmpty();
        streamed.Finish.Should().Be("stop");
        streamed.Text.Should().BeEmpty();
        var choice = echoed.GetProperty("choices")[0];
        choice.GetProperty("text").GetString().Should().StartWith("<s>Hello world", echoed.ToString());
        choice.GetProperty("logprobs").GetProperty("token_logprobs").EnumerateArray().Should().HaveCount(echoed.GetProperty("usage").GetProperty("prompt_tokens").GetInt32() + 2);
        // "▁Hello" starts the text, so decoding drops its "▁": " world" starts at the space after "<s>Hello".
        Offsets(choice).Take(3).Should().Equal(0, "<s>".Length, "<s>Hello".Length);
    }

    [Theory]
    [InlineData("config.json", "quantization_config", """{"quant_method": "awq", "bits": 4}""")]
    [InlineData("config.json", "rope_scaling", """{"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}""")]
    [InlineData("generation_config.json", "eos_token_id", "[301, 9000]")]
    [InlineData("generation_config.json", "eos_token_id", "\"eot\"")]
    public async Task PublishedCheckpoint_WithAFieldTheEngineCannotHonour_IsRefusedAtImportNamingFileAndField(string file, string field, string value)
    {
        await using var factory = new FineTuningFactory();
        var http = factory.CreateClient();
        var target = Path.Combine(factory.DataFolder, "imports", "odd");
        Llama32Instruct(target);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(target, file)))!.AsObject();
        json[field] = JsonNode.Parse(value);
        File.WriteAllText(Path.Combine(target, file), json.ToJsonString());

        var imported = await http.PostAsJsonAsync("/api/models/import", new { path = "imports/odd", name = "odd" }, Ct);
        var body = await imported.Content.ReadAsStringAsync(Ct);

        imported.StatusCode.Should().Be(HttpStatusCode.BadRequest, body);
        body.Should().Contain(file).And.Contain($"'{field}'");
        (await http.GetAsync("/v1/models/odd", Ct)).StatusCode.Should().Be(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task PaddedVocabulary_AnIdTheTokenizerDoesNotDefine_IsGeneratedAsNoText()
    {
        await using var factory = new FineTuningFactory();
        var http = factory.CreateClient();
        await ImportAsync(factory, http, "llama32", vocabSize: 320);

        var chat = await ChatForcingAsync(http, "llama32", 315);
        var streamed = await StreamAsync(http, new { model = "llama32", messages = Hello, max_tokens = 2, temperature = 0, stream = true, logit_bias = new Dictionary<string, int> { ["315"] = 100 } });
        var completion = await PostAsync(http, "/v1/completions", new { model = "llama32", prompt = "Hi", max_tokens = 2, temperature = 0, logprobs = 1, logit_bias = new Dictionary<string, int> { ["315"] = 100 } });

        chat.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString().Should().BeEmpty();
        chat.GetProperty("choices")[0].GetProperty("finish_reason").GetString().Should().Be("length");
        streamed.Finish.Should().Be("length");
        completion.GetProperty("choices")[0].GetProperty("token_ids").EnumerateArray().Select(t => t.GetInt32()).Should().Equal(315, 315);
        completion.GetProperty("choices")[0].GetProperty("text").GetString().Should().BeEmpty();
    }

    [Theory]
    [InlineData("llama32", 0.6, 0.9)] // its generation_config.json: do_sample true, temperature 0.6, top_p 0.9
    [InlineData("tinyllama", 1.0, 1.0)] // no sampling keys: the OpenAI defaults
    public async Task PublishedCheckpoint_RequestWithoutSamplingSettings_SamplesWithItsGenerationConfigDefaults(string family, double temperature, double topP)
    {
        await using var factory = new FineTuningFactory();
        var http = factory.CreateClient();
        await ImportAsync(factory, http, family);
        async Task<string> ChatAsync(object request) =>
            (await PostAsync(http, "/v1/chat/completions", request)).GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;

        var left = await ChatAsync(new { model = family, messages = Hello, max_tokens = 24, seed = 11 });
        var explicitDefaults = await ChatAsync(new { model = family, messages = Hello, max_tokens = 24, seed = 11, temperature, top_p = topP });
        var other = await ChatAsync(new { model = family, messages = Hello, max_tokens = 24, seed = 11, temperature = 0 });

        left.Should().Be(explicitDefaults, "a request that leaves temperature and top_p out samples as the model's defaults say");
        left.Should().NotBe(other, "the settings matter on this model, so the comparison above can fail");
    }

    [Fact]
    public void WithDefaults_GenerationConfig_FillsOnlyWhatTheRequestLeftOut_GreedyWhereItSaysDoSampleFalse()
    {
        static GenerationConfig Config(string json) => new() { Raw = JsonNode.Parse(json)!.AsObject() };
        var omitted = new OpenAiSampling.Sampling(8, null, null, [], null, 1, false, 0, null);
        var given = omitted with { Temperature = 0.3 };

        omitted.WithDefaults(Config("""{"do_sample":false,"temperature":0.6,"top_p":0.9}""")).Should().Match<OpenAiSampling.Sampling>(s => s.Temperature == 0 && s.TopP == 1.0);
        omitted.WithDefaults(Config("""{"do_sample":true,"temperature":0.6,"top_p":0.9}""")).Should().Match<OpenAiSampling.Sampling>(s => s.Temperature == 0.6 && s.TopP == 0.9);
        omitted.WithDefaults(Config("""{"temperature":7,"top_p":0}""")).Should().Match<OpenAiSampling.Sampling>(s => s.Temperature == 1.0 && s.TopP == 1.0, "values outside the OpenAI ranges are not taken");
        given.WithDefaults(Config("""{"do_sample":false,"top_p":0.5}""")).Should().Match<OpenAiSampling.Sampling>(s => s.Temperature == 0.3 && s.TopP == 1.0, "the request's temperature wins; do_sample false leaves top_p at 1");
        given.WithDefaults(Config("""{"top_p":0.5}""")).TopP.Should().Be(0.5);
        omitted.WithDefaults(new GenerationConfig()).Should().Match<OpenAiSampling.Sampling>(s => s.Temperature == 1.0 && s.TopP == 1.0);
    }

    [Theory]
    [InlineData("llama32", 0)]
    [InlineData("llama32", 4)]
    [InlineData("tinyllama", 0)]
    [InlineData("tinyllama", 4)]
    public async Task PublishedCheckpoint_FineTunedThroughV1_ChatsAndSavesThePublishedLayoutBack(string family, int loraRank)
    {
        await using var factory = new FineTuningFactory();
        var http = factory.CreateClient();
        var source = await ImportAsync(factory, http, family);
        string[] words = ["red", "blue", "green", "gold", "grey", "pink", "teal", "navy", "lime", "plum", "rose", "sand"];
        var lines = words.Select((w, i) => JsonSerializer.Serialize(new { messages = new object[] { new { role = "user", content = $"{w} {i}" }, new { role = "assistant", content = i % 2 == 0 ? "yes" : "no" } } }));
        var file = await UploadAsync(http, TestData.Jsonl(lines));

        var created = await http.PostAsJsonAsync("/v1/fine_tuning/jobs", new
        {
            model = family, training_file = file, seed = 1,
            method = new { type = "supervised", supervised = new { hyperparameters = new { n_epochs = 1, batch_size = 4, lora_rank = loraRank } } },
        }, Ct);
        var createdBody = await created.Content.ReadFromJsonAsync<JsonElement>(Ct);
        created.StatusCode.Should().Be(HttpStatusCode.OK, createdBody.ToString());
        var job = await WaitAsync(http, createdBody.GetProperty("id").GetString()!);
        job.GetProperty("status").GetString().Should().Be("succeeded", job.ToString());
        var fineTuned = job.GetProperty("fine_tuned_model").GetString()!;
        var chat = await PostAsync(http, "/v1/chat/completions", new { model = fineTuned, messages = Hello, max_tokens = 3, temperature = 0 });
        var stopped = await ChatForcingAsync(http, fineTuned, family == "llama32" ? EndOfMessage : 2);
        var exported = await http.GetAsync($"/api/models/{fineTuned}/export", Ct);
        exported.StatusCode.Should().Be(HttpStatusCode.OK);
        var unpacked = EngineFixtures.TempDirectory();
        await using (var zip = await exported.Content.ReadAsStreamAsync(Ct))
            ZipFile.ExtractToDirectory(zip, unpacked);

        chat.GetProperty("choices")[0].GetProperty("message").GetProperty("content").ValueKind.Should().Be(JsonValueKind.String);
        stopped.GetProperty("choices")[0].GetProperty("finish_reason").GetString().Should().Be("stop", "the fine-tuned model keeps its base's eos ids");
        var files = Directory.GetFiles(unpacked).Select(Path.GetFileName).ToList();
        files.Should().Contain(["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]);
        files.Should().Contain(f => f == "model.safetensors" || f == "model.safetensors.index.json");
        foreach (var name in new[] { "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json" })
            File.ReadAllText(Path.Combine(unpacked, name)).Should().Be(File.ReadAllText(Path.Combine(source, name)), $"{name} is the base's, unchanged");
        var generation = JsonNode.Parse(File.ReadAllText(Path.Combine(unpacked, "generation_config.json")))!.AsObject();
        var baseGeneration = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "generation_config.json")))!.AsObject();
        generation["eos_token_id"]!.ToJsonString().Should().Be(baseGeneration["eos_token_id"]!.ToJsonString());
        foreach (var key in baseGeneration.Select(p => p.Key).Where(k => k != "transformers_version"))
            generation[key]!.ToJsonString().Should().Be(baseGeneration[key]!.ToJsonString(), $"generation_config.json keeps '{key}'");
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(unpacked, "config.json")))!.AsObject();
        var baseConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")))!.AsObject();
        foreach (var key in new[] { "architectures", "eos_token_id", "bos_token_id", "rope_scaling", "rope_theta", "tie_word_embeddings", "head_dim", "max_position_embeddings", "num_key_value_heads" }.Where(baseConfig.ContainsKey))
            (config[key]?.ToJsonString()).Should().Be(baseConfig[key]?.ToJsonString(), $"config.json keeps '{key}'");
        // LoRA only adds to the base's weights, so they are written back in its bf16 (half the size of fp32); a full
        // fine-tune writes its fp32 master weights.
        var written = loraRank > 0 ? SafeTensorDType.BF16 : SafeTensorDType.F32;
        HfWeights.StoredDType(source).Should().Be(SafeTensorDType.BF16, "the published layouts are bf16");
        HfWeights.Resolve(unpacked).Values.Select(l => l.Entry.DType).Distinct().Should().Equal(written);
        config["torch_dtype"]!.GetValue<string>().Should().Be(loraRank > 0 ? "bfloat16" : "float32");
        using var reloaded = CausalLm.Load(unpacked);
        reloaded.Config.MaxPositions.Should().Be(baseConfig["max_position_embeddings"]!.GetValue<int>());
        reloaded.Tokenizer!.Encode("Hello").Should().Equal(AspireTune.Engine.Tokenization.TokenizerFiles.TryLoad(source)!.Encode("Hello"));
    }

    private static IEnumerable<int> Offsets(JsonElement choice) =>
        choice.GetProperty("logprobs").GetProperty("text_offset").EnumerateArray().Select(o => o.GetInt32());

    private static async Task<string> UploadAsync(HttpClient http, byte[] content)
    {
        using var form = new MultipartFormDataContent { { new StringContent("fine-tune"), "purpose" }, { new ByteArrayContent(content), "file", "train.jsonl" } };
        var response = await http.PostAsync("/v1/files", form, Ct);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(Ct);
        response.IsSuccessStatusCode.Should().BeTrue(body.ToString());
        return body.GetProperty("id").GetString()!;
    }

    private static async Task<JsonElement> WaitAsync(HttpClient http, string id)
    {
        var until = DateTime.UtcNow.AddMinutes(2);
        while (true)
        {
            var job = await Api.GetJsonAsync(http, $"/v1/fine_tuning/jobs/{id}");
            if (job.GetProperty("status").GetString() is "succeeded" or "failed" or "cancelled" || DateTime.UtcNow > until)
                return job;
            await Task.Delay(200, Ct);
        }
    }

    /// <summary>A streamed chat completion: the content of its deltas and the finish reason of its last chunk.</summary>
    private static async Task<(string Text, string? Finish)> StreamAsync(HttpClient http, object request)
    {
        var response = await http.PostAsJsonAsync("/v1/chat/completions", request, Ct);
        response.StatusCode.Should().Be(HttpStatusCode.OK, await response.Content.ReadAsStringAsync(Ct));
        var text = "";
        string? finish = null;
        foreach (var line in (await response.Content.ReadAsStringAsync(Ct)).Split('\n'))
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal) || line == "data: [DONE]") continue;
            var choice = JsonNode.Parse(line["data: ".Length..])!["choices"]!.AsArray().SingleOrDefault();
            if (choice is null) continue;
            text += choice["delta"]?["content"]?.GetValue<string>() ?? "";
            finish = choice["finish_reason"]?.GetValue<string>() ?? finish;
        }
        return (text, finish);
    }
}

using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AspireTune.Engine.Tokenization;
using AspireTune.FineTuning.Curation;
using AspireTune.FineTuning.Serving;
using AspireTune.FineTuning.Tests.Engine;

namespace AspireTune.FineTuning.Tests;

/// <summary>An imported checkpoint with a chat_template: training and serving render conversations with it, and its fine-tuned model keeps it.</summary>
[Collection(TrainingCollection.Name)]
public sealed class ChatTemplateServingTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>Short enough for gpt2-tiny's 64 positions; a role tag per turn, as many real templates have.</summary>
    private const string Template = "{% for m in messages %}{{ '#' + m['role'][0] + ' ' + m['content'] | trim }}\n{% endfor %}{% if add_generation_prompt %}{{ '#a ' }}{% endif %}";

    private static readonly string[] Words = ["red", "blue", "green", "gold", "grey", "pink", "teal", "navy", "lime", "plum", "rose", "sand"];

    /// <summary>One epoch (batches of 4) of <paramref name="lines"/> on <paramref name="model"/>, its first 3 lines for validation; the job once it ended.</summary>
    internal static async Task<JsonElement> TrainOneEpochAsync(HttpClient http, string model, IReadOnlyList<string> lines)
    {
        var train = await Api.UploadAsync(http, TestData.Jsonl(lines));
        var valid = await Api.UploadAsync(http, TestData.Jsonl(lines.Take(3)), "valid.jsonl");
        var created = await Api.CreateJobAsync(http, new
        {
            model, training_file = train.GetProperty("id").GetString(), validation_file = valid.GetProperty("id").GetString(),
            hyperparameters = new { n_epochs = 1, batch_size = 4 },
        });
        return await Api.WaitForJobAsync(http, created.GetProperty("id").GetString()!, TimeSpan.FromMinutes(2));
    }

    /// <summary>Imports gpt2-tiny under <paramref name="name"/> with <paramref name="template"/> as its chat_template; returns its folder.</summary>
    internal static async Task<string> ImportTemplatedAsync(FineTuningFactory factory, HttpClient http, string name, string template)
    {
        var target = Path.Combine(factory.DataFolder, "imports", name);
        Directory.CreateDirectory(target);
        foreach (var file in Directory.GetFiles(EngineFixtures.Path_("gpt2-tiny")).Where(f => !f.EndsWith("reference.json", StringComparison.Ordinal)))
            File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(target, "tokenizer_config.json")))!.AsObject();
        config["chat_template"] = template;
        File.WriteAllText(Path.Combine(target, "tokenizer_config.json"), config.ToJsonString());
        var imported = await http.PostAsJsonAsync("/api/models/import", new { path = $"imports/{name}", name }, Ct);
        imported.StatusCode.Should().Be(HttpStatusCode.Created, await imported.Content.ReadAsStringAsync(Ct));
        return target;
    }

    [Fact]
    public async Task ImportedCheckpoint_WithChatTemplate_TrainsAndServesWithTheSameTemplate()
    {
        await using var factory = new FineTuningFactory();
        var http = factory.CreateClient();
        var target = await ImportTemplatedAsync(factory, http, "templated", Template);
        var lines = Words.Select((w, i) => JsonSerializer.Serialize(new { prompt = $"{w} {i}", completion = i % 2 == 0 ? "yes" : "no" })).ToList();

        var job = await TrainOneEpochAsync(http, "templated", lines);
        var tokenized = await (await http.PostAsJsonAsync("/v1/tokenize", new { model = "templated", messages = new[] { new { role = "user", content = "red 0" } } }, Ct))
            .Content.ReadFromJsonAsync<JsonElement>(Ct);
        var fineTuned = job.GetProperty("fine_tuned_model").GetString()!;
        var tokenizedByFineTuned = await (await http.PostAsJsonAsync("/v1/tokenize", new { model = fineTuned, messages = new[] { new { role = "user", content = "red 0" } } }, Ct))
            .Content.ReadFromJsonAsync<JsonElement>(Ct);

        var tokenizer = ByteLevelBpeTokenizer.TryLoad(target)!;
        job.GetProperty("status").GetString().Should().Be("succeeded", job.ToString());
        // Each example once: "#u <prompt>\n#a " then the answer with the template's "\n", and the end-of-text token.
        var expected = Words.Select((w, i) => tokenizer.Encode($"#u {w} {i}\n#a ").Count + tokenizer.Encode((i % 2 == 0 ? "yes" : "no") + "\n").Count + 1).Sum();
        job.GetProperty("trained_tokens").GetInt64().Should().Be(expected, "training rendered every example with the checkpoint's template");
        tokenized.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()).Should().Equal(tokenizer.Encode("#u red 0\n#a "), "serving renders with the same template");
        tokenizedByFineTuned.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()).Should().Equal(tokenizer.Encode("#u red 0\n#a "), "the fine-tuned model keeps its base's template");
        ChatTemplate.For(target).Render(new TrainingExample(1, [new ChatMessage("user", "red 0"), new ChatMessage("assistant", "yes")]))
            .Should().Be(("#u red 0\n#a ", "yes\n"));
    }
}

using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using AspireTune.Engine.Tokenization;
using AspireTune.Engine.Training;
using AspireTune.FineTuning.Curation;
using AspireTune.FineTuning.Serving;

namespace AspireTune.FineTuning.Tests;

/// <summary>Multi-turn chat files with <c>weight</c> through the hosted job API: accepted as before, every trained turn counted, 0.5 refused.</summary>
[Collection(TrainingCollection.Name)]
public sealed class MultiTurnJobTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static readonly string[] Topics = ["tea", "maps", "jazz", "moss", "kites", "salt", "owls", "rust", "ferns", "dice", "glass", "wool"];

    /// <summary>
    /// Two answers a line; odd lines have a long first question (over max_seq_len 128 as a whole, so their first answer is
    /// truncated away), line 4 excludes its first answer and line 6 its last (weight 0).
    /// </summary>
    private static List<string> Lines() => [.. Topics.Select((t, i) => JsonSerializer.Serialize(new
    {
        messages = new object[]
        {
            new { role = "user", content = i % 2 == 0 ? $"Tell me about {t}." : $"Tell me about {t}, at length, {string.Join(' ', Enumerable.Repeat(t, 12))}." },
            i == 3 ? new { role = "assistant", content = $"{t} is fine", weight = 0 } : (object)new { role = "assistant", content = $"{t} is fine" },
            new { role = "user", content = $"more {i}?" },
            i == 5 ? new { role = "assistant", content = $"no more {t}", weight = 0 } : (object)new { role = "assistant", content = $"no more {t}" },
        },
    }))];

    private static async Task<(HttpStatusCode Status, JsonElement Body)> UploadAsync(HttpClient http, IEnumerable<string> lines, string name)
    {
        using var form = new MultipartFormDataContent();
        var file = new ByteArrayContent(TestData.Jsonl(lines));
        file.Headers.ContentType = new MediaTypeHeaderValue("application/jsonl");
        form.Add(file, "file", name);
        form.Add(new StringContent("fine-tune"), "purpose");
        var response = await http.PostAsync("/v1/files", form, Ct);
        return (response.StatusCode, await response.Content.ReadFromJsonAsync<JsonElement>(Ct));
    }

    [Fact]
    public async Task HostedJob_MultiTurnFileWithWeights_TrainsEveryTrainedTurnAndReportsTruncatedOnes()
    {
        await using var factory = new FineTuningFactory();
        var http = factory.CreateClient();
        var lines = Lines();

        var (trainStatus, train) = await UploadAsync(http, lines, "train.jsonl");
        var (_, valid) = await UploadAsync(http, lines.Take(3), "valid.jsonl");
        var (halfStatus, half) = await UploadAsync(http, [lines[0], lines[1].Replace("\"content\":\"maps is fine\"}", "\"content\":\"maps is fine\",\"weight\":0.5}")], "half.jsonl");
        trainStatus.Should().Be(HttpStatusCode.OK, train.ToString());
        var created = await http.PostAsJsonAsync("/v1/fine_tuning/jobs", new
        {
            model = "aspiretune-tiny", training_file = train.GetProperty("id").GetString(), validation_file = valid.GetProperty("id").GetString(),
            method = new { type = "supervised", supervised = new { hyperparameters = new { n_epochs = 1, batch_size = 4, max_seq_len = 128 } } },
        }, Ct);
        var id = (await created.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("id").GetString()!;
        var job = await Api.WaitForJobAsync(http, id, TimeSpan.FromMinutes(2));
        var hosted = await Api.GetJsonAsync(http, $"/v1/fine_tuning/jobs/{id}");

        job.GetProperty("status").GetString().Should().Be("succeeded", job.ToString());
        // Every token of every (truncated) sequence of the one epoch, as the trainer encodes the built-in template's segments.
        var examples = JsonlDataset.Parse(TestData.Jsonl(lines)).Examples.Select(ChatTemplate.BuiltIn.RenderTurns).ToList();
        var sequences = SftData.Encode(examples, ByteLevelBpeTokenizer.CreateByteLevel(), 128, "training");
        hosted.GetProperty("trained_tokens").GetInt64().Should().Be(sequences.Sum(s => s.Ids.Length));
        var tokens = job.GetProperty("quality_report").GetProperty("tokens");
        tokens.GetProperty("truncated_lines").EnumerateArray().Select(l => l.GetInt32()).Should().Equal(2, 4, 6, 8, 10, 12);
        // Line 4's first answer has weight 0 and line 6's last: what truncation drops of them was never trained.
        tokens.GetProperty("truncated_trained_lines").EnumerateArray().Select(l => l.GetInt32()).Should().Equal(2, 8, 10, 12);
        halfStatus.Should().Be(HttpStatusCode.BadRequest);
        half.GetProperty("error").GetProperty("param").GetString().Should().Be("file");
        half.GetProperty("error").GetProperty("message").GetString().Should().Contain("line 2").And.Contain("messages[1].weight must be 0 or 1");
    }
}

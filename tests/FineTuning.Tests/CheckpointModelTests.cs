using System.ClientModel;
using System.Net.Http.Json;
using System.Text.Json;
using OpenAI.Chat;
using OpenAI.Files;
using OpenAI.FineTuning;
using static AspireTune.FineTuning.Tests.OpenAiFineTuningSdkTests;

namespace AspireTune.FineTuning.Tests;

/// <summary>
/// A job's kept checkpoints served as <c>ft:...:ckpt-step-N</c> models, as the hosted API serves them, driven by the
/// official OpenAI .NET SDK: listed with the checkpoints and in <c>/v1/models</c>, answering as the weights of their
/// step, and gone (404 saying why) once the run has pruned them.
/// </summary>
[Collection(TrainingCollection.Name)]
public sealed class CheckpointModelTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static readonly List<ChatMessage> Review = [new SystemChatMessage("Classify the sentiment."), new UserChatMessage("The soup was excellent")];

    [Fact]
    public async Task CheckpointModels_OfficialSdk_AnswerAsTheirStepsWeightsAndGoOncePruned()
    {
        await using var factory = new FineTuningFactory();
        var http = factory.CreateClient();
        var client = Client(http);
        var fineTuning = client.GetFineTuningClient();
        var files = client.GetOpenAIFileClient();
        OpenAIFile training = await files.UploadFileAsync(BinaryData.FromBytes(TestData.Jsonl(TestData.ChatLines(40))), "train.jsonl", FileUploadPurpose.FineTune);
        OpenAIFile validation = await files.UploadFileAsync(BinaryData.FromBytes(TestData.Jsonl(TestData.ChatLines(10, offset: 100))), "valid.jsonl", FileUploadPurpose.FineTune);
        // 40 examples in batches of 4 for 2 epochs: 20 steps, a checkpoint every 4 (the run keeps the last two), and one
        // evaluation, at step 20, so the job's own model holds step 20's weights.
        var created = await http.PostAsJsonAsync("/v1/fine_tuning/jobs", new
        {
            model = "aspiretune-tiny", training_file = training.Id, validation_file = validation.Id, seed = 3,
            method = new { type = "supervised", supervised = new { hyperparameters = new { n_epochs = 2, batch_size = 4, learning_rate_multiplier = 3, checkpoint_interval = 4, eval_interval = 20, early_stopping_patience = 0 } } },
        }, Ct);
        var id = (await created.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("id").GetString()!;

        var job = await RunToEndAsync(fineTuning, await fineTuning.GetJobAsync(id, Ct));
        var checkpoints = await job.GetCheckpointsAsync(new GetCheckpointsOptions(), Ct).ToListAsync(Ct);
        var model = job.Value!;
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 6, IncludeLogProbabilities = true, TopLogProbabilityCount = 3 };
        ChatCompletion ofJob = await client.GetChatClient(model).CompleteChatAsync(Review, options, Ct);
        ChatCompletion ofStep20 = await client.GetChatClient($"{model}:ckpt-step-20").CompleteChatAsync(Review, options, Ct);
        ChatCompletion ofStep16 = await client.GetChatClient($"{model}:ckpt-step-16").CompleteChatAsync(Review, options, Ct);
        var listed = (await JsonAsync(http, "/v1/models")).GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()).ToList();
        var retrieved = await JsonAsync(http, $"/v1/models/{model}:ckpt-step-20");
        var pruned = await Assert.ThrowsAsync<ClientResultException>(() => client.GetChatClient($"{model}:ckpt-step-4").CompleteChatAsync(Review, options, Ct));
        var noSuchStep = await Assert.ThrowsAsync<ClientResultException>(() => client.GetChatClient($"{model}:ckpt-step-7").CompleteChatAsync(Review, options, Ct));

        job.Status.Should().Be(FineTuningStatus.Succeeded);
        checkpoints.Select(c => c.StepNumber).Should().Equal(20, 16, 12, 8, 4);
        checkpoints.Select(c => c.ModelId).Should().Equal($"{model}:ckpt-step-20", $"{model}:ckpt-step-16", null, null, null);
        ofStep20.Content.Single().Text.Should().Be(ofJob.Content.Single().Text);
        LogProbabilities(ofStep20).Should().Equal(LogProbabilities(ofJob), "step 20's checkpoint holds the weights the job's model was saved with");
        LogProbabilities(ofStep16).Should().NotEqual(LogProbabilities(ofJob), "step 16's weights are not step 20's");
        listed.Should().Contain([model, $"{model}:ckpt-step-20", $"{model}:ckpt-step-16"]).And.NotContain($"{model}:ckpt-step-4");
        retrieved.GetProperty("owned_by").GetString().Should().Be("aspiretune-fine-tuning");
        pruned.Status.Should().Be(404);
        pruned.Message.Should().Contain("no longer kept");
        noSuchStep.Status.Should().Be(404);
        noSuchStep.Message.Should().Contain("does not exist");
    }

    private static List<float> LogProbabilities(ChatCompletion completion) =>
        completion.ContentTokenLogProbabilities.SelectMany(t => t.TopLogProbabilities.Select(p => p.LogProbability).Prepend(t.LogProbability)).ToList();
}

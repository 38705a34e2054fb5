using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using AspireTune.Contracts.FineTuning;
using AspireTune.FineTuning.Consumers;
using AspireTune.ServiceDefaults.Artifacts;
using AspireTune.ServiceDefaults.Data;
using AspireTune.ServiceDefaults.Messaging;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace AspireTune.FineTuning.Tests;

[Collection(TrainingCollection.Name)]
public sealed class JobLifecycleTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task CancelJob_WhileTraining_WorkerStopsAndMarksItCancelled()
    {
        await using var factory = new FineTuningFactory(new Dictionary<string, string?> { ["FineTuning:BuiltIn:Hidden"] = "128", ["FineTuning:BuiltIn:Heads"] = "4" });
        var http = factory.CreateClient();
        var file = await Api.UploadAsync(http, TestData.Jsonl(TestData.ChatLines(110)));
        var id = (await Api.CreateJobAsync(http, new
        {
            model = "aspiretune-tiny",
            training_file = file.GetProperty("id").GetString(),
            hyperparameters = new Dictionary<string, object> { ["n_epochs"] = 10, ["batch_size"] = 2 },
        })).GetProperty("id").GetString()!;
        var running = await Api.WaitForJobAsync(http, id, TimeSpan.FromMinutes(1), "running", "succeeded", "failed");
        running.GetProperty("status").GetString().Should().Be("running");

        var response = await http.PostAsync($"/api/fine-tuning/jobs/{id}/cancel", null, Ct);
        var accepted = await response.Content.ReadFromJsonAsync<JsonElement>(Ct);
        var job = await Api.WaitForJobAsync(http, id, TimeSpan.FromMinutes(1));
        var events = await Api.GetJsonAsync(http, $"/api/fine-tuning/jobs/{id}/events?limit=1000");

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        accepted.GetProperty("cancel_requested").GetBoolean().Should().BeTrue();
        job.GetProperty("status").GetString().Should().Be("cancelled");
        job.GetProperty("fine_tuned_model").ValueKind.Should().Be(JsonValueKind.Null);
        job.GetProperty("step").GetInt32().Should().BeLessThan(job.GetProperty("total_steps").GetInt32());
        events.GetProperty("data").EnumerateArray().Select(e => e.GetProperty("type").GetString()).Should().ContainInOrder("queued", "cancel_requested", "cancelled").And.Contain("started");
    }

    [Fact]
    public async Task StartFineTuning_FromAnotherServiceAndRedelivered_CreatesTheJobOnceAndRemovesTestOverlap()
    {
        await using var factory = new FineTuningFactory(new Dictionary<string, string?> { ["FineTuning:WorkerEnabled"] = "false" });
        var http = factory.CreateClient();
        var artifacts = factory.Services.GetRequiredService<IArtifactStore>();
        var training = await artifacts.PutAsync(new MemoryStream(TestData.Jsonl(TestData.ChatLines(30))), "datasets", "train.jsonl", "application/jsonl", Ct);
        var test = await artifacts.PutAsync(new MemoryStream(TestData.Jsonl(TestData.ChatLines(2, offset: 10))), "datasets", "test.jsonl", "application/jsonl", Ct);
        var endpoint = await factory.Services.GetRequiredService<IBus>().GetSendEndpoint(new Uri($"queue:{StartFineTuningConsumerDefinition.QueueName}"));
        var command = new StartFineTuning { JobId = Guid.NewGuid(), BaseModel = "aspiretune-tiny", TrainingFile = training, TestFile = test, ExperimentId = Guid.NewGuid() };
        var messageId = NewId.NextGuid();

        await endpoint.Send(command, c => c.MessageId = messageId, Ct);
        var first = await Api.WaitForJobAsync(http, $"ftjob-{command.JobId:N}", TimeSpan.FromMinutes(1), "queued", "failed");
        await endpoint.Send(command, c => c.MessageId = messageId, Ct);
        // A later command on the same one-at-a-time queue: once it is handled, the redelivery before it was too.
        var marker = command with { JobId = Guid.NewGuid(), TestFile = null };
        await endpoint.Send(marker, Ct);
        await Api.WaitForJobAsync(http, $"ftjob-{marker.JobId:N}", TimeSpan.FromMinutes(1), "queued", "failed");
        var events = await Api.GetJsonAsync(http, $"/api/fine-tuning/jobs/ftjob-{command.JobId:N}/events");

        first.GetProperty("status").GetString().Should().Be("queued", first.ToString());
        first.GetProperty("experiment_id").GetGuid().Should().Be(command.ExperimentId!.Value);
        var leakage = first.GetProperty("quality_report").GetProperty("leakage");
        leakage.GetProperty("overlapping_training_examples").GetInt32().Should().Be(2);
        leakage.GetProperty("removed_lines").EnumerateArray().Select(l => l.GetProperty("line").GetInt32()).Should().Equal(11, 12);
        events.GetProperty("data").EnumerateArray().Select(e => e.GetProperty("type").GetString()).Should().Equal("created", "validated", "quality_warning", "queued");
    }

    [Fact]
    public async Task StartFineTuning_ArtifactMissing_JobFailsWithTheReasonInsteadOfWaiting()
    {
        await using var factory = new FineTuningFactory(new Dictionary<string, string?> { ["FineTuning:WorkerEnabled"] = "false" });
        var http = factory.CreateClient();
        var endpoint = await factory.Services.GetRequiredService<IBus>().GetSendEndpoint(new Uri($"queue:{StartFineTuningConsumerDefinition.QueueName}"));
        var command = new StartFineTuning
        {
            JobId = Guid.NewGuid(),
            BaseModel = "aspiretune-tiny",
            TrainingFile = new Contracts.Common.ArtifactRef { Id = "datasets/0000/missing.jsonl", Sha256 = new string('0', 64), Length = 10 },
        };

        await endpoint.Send(command, Ct);
        var job = await Api.WaitForJobAsync(http, $"ftjob-{command.JobId:N}", TimeSpan.FromMinutes(1));

        job.GetProperty("status").GetString().Should().Be("failed");
        job.GetProperty("error").GetProperty("code").GetString().Should().Be("validation_error");
        job.GetProperty("error").GetProperty("message").GetString().Should().Contain("datasets/0000/missing.jsonl").And.Contain("does not exist");
    }

    [Fact]
    public async Task Outbox_JobCommittedWithItsCommandButNotYetSent_CommandGoesOutOnceAndTheJobIsValidated()
    {
        await using var factory = new FineTuningFactory(new Dictionary<string, string?> { ["FineTuning:WorkerEnabled"] = "false" });
        var http = factory.CreateClient();
        var artifact = await factory.Services.GetRequiredService<IArtifactStore>()
            .PutAsync(new MemoryStream(TestData.Jsonl(TestData.ChatLines(20))), "datasets", "train.jsonl", "application/jsonl", Ct);
        var id = Guid.NewGuid();
        Guid messageId;
        // What a crash right after the API's commit leaves behind: the job and its undelivered command, nothing sent.
        await using (var scope = factory.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<Data.FineTuningDbContext>();
            var job = new Data.FineTuningJob
            {
                Id = id,
                BaseModel = "aspiretune-tiny",
                Status = Data.JobStatus.ValidatingFiles,
                TrainingArtifactId = artifact.Id,
                TrainingSha256 = artifact.Sha256,
                TrainingBytes = artifact.Length,
                RequestedHyperparameters = [],
            };
            db.Jobs.Add(job);
            messageId = db.SendOnCommit(Jobs.JobSubmitter.StartFineTuningQueue, Apis.JobsApi.ToCommand(job));
            await db.SaveChangesAsync(Ct);
        }

        var settled = await Api.WaitForJobAsync(http, $"ftjob-{id:N}", TimeSpan.FromMinutes(1), "queued", "failed");

        settled.GetProperty("status").GetString().Should().Be("queued", settled.ToString());
        await using (var scope = factory.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<Data.FineTuningDbContext>();
            (await db.Set<OutboxMessage>().SingleAsync(m => m.MessageId == messageId, Ct)).DeliveredAt.Should().NotBeNull();
            (await db.Set<ProcessedMessage>().CountAsync(m => m.MessageId == messageId, Ct)).Should().Be(1);
        }
    }
}

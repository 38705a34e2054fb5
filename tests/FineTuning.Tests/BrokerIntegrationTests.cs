using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using AspireTune.Contracts.FineTuning;
using AspireTune.TestSupport;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;

namespace AspireTune.FineTuning.Tests;

/// <summary>The service on the real broker (RabbitMQ) and database (PostgreSQL) that bootstrap starts on 127.0.0.1.</summary>
[Collection(TrainingCollection.Name)]
public sealed class BrokerIntegrationTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task CreateJob_OnRabbitMqAndPostgres_PublishesEventsInOrderAndServesTheModel()
    {
        await using var factory = new FineTuningFactory(new Dictionary<string, string?>
        {
            ["ConnectionStrings:messaging"] = TestInfrastructure.RabbitMq,
            ["ConnectionStrings:finetuningdb"] = TestInfrastructure.PostgresDatabase("finetuning_it"),
        });
        var http = factory.CreateClient();
        var received = new ConcurrentQueue<object>();
        var completed = new TaskCompletionSource<TrainingCompleted>(TaskCreationOptions.RunContinuationsAsynchronously);
        // A temporary queue bound to the event exchanges, read one message at a time so arrival order is kept.
        var bus = factory.Services.GetRequiredService<IBus>();
        var listener = bus.ConnectReceiveEndpoint(new TemporaryEndpointDefinition(), KebabCaseEndpointNameFormatter.Instance, e =>
        {
            e.ConcurrentMessageLimit = 1;
            e.Handler<TrainingStarted>(c => Record(c.Message));
            e.Handler<TrainingProgressed>(c => Record(c.Message));
            e.Handler<CheckpointSaved>(c => Record(c.Message));
            e.Handler<TrainingFailed>(c => Record(c.Message));
            e.Handler<TrainingCompleted>(c =>
            {
                received.Enqueue(c.Message);
                completed.TrySetResult(c.Message);
                return Task.CompletedTask;
            });
        });
        await listener.Ready;
        Task Record(object message)
        {
            received.Enqueue(message);
            return Task.CompletedTask;
        }

        var file = await Api.UploadAsync(http, TestData.Jsonl(TestData.ChatLines(30)));
        var job = await Api.CreateJobAsync(http, new
        {
            model = "aspiretune-tiny",
            training_file = file.GetProperty("id").GetString(),
            hyperparameters = new Dictionary<string, object> { ["n_epochs"] = 2, ["batch_size"] = 4, ["eval_interval"] = 3, ["checkpoint_interval"] = 3 },
        });
        Guid.TryParse(job.GetProperty("id").GetString()!["ftjob-".Length..], out var jobId).Should().BeTrue();
        var done = await completed.Task.WaitAsync(TimeSpan.FromMinutes(2), Ct);
        await listener.StopAsync(Ct);

        var mine = received.Where(m => JobOf(m) == jobId).ToList();
        mine.First().Should().BeOfType<TrainingStarted>().Which.Resumed.Should().BeFalse();
        mine.Last().Should().BeOfType<TrainingCompleted>();
        mine.OfType<TrainingCompleted>().Should().ContainSingle();
        mine.OfType<TrainingFailed>().Should().BeEmpty();
        mine.OfType<TrainingProgressed>().Select(p => p.Step).Should().NotBeEmpty().And.BeInAscendingOrder();
        mine.OfType<CheckpointSaved>().Select(c => c.Step).Should().NotBeEmpty().And.BeInAscendingOrder().And.OnlyHaveUniqueItems();
        mine.OfType<TrainingProgressed>().Should().Contain(p => p.ValidLoss != null && p.ValidMeanTokenAccuracy != null);
        done.DatasetSha256.Should().Be(file.GetProperty("sha256").GetString());
        done.BaseModel.Should().Be("aspiretune-tiny");
        done.ServedEndpoint.Should().EndWith("/v1");
        done.BestMetrics.Should().Contain(m => m.Name == "valid_loss");
        // The curves the verdict was read from travel with the event: the validation points the progress events carried.
        done.Curve.Select(p => p.Step).Should().BeInAscendingOrder();
        done.Curve.Where(p => p.ValidLoss != null).Select(p => p.Step).Should().Equal(mine.OfType<TrainingProgressed>().Where(p => p.ValidLoss != null).Select(p => p.Step));

        var models = await Api.GetJsonAsync(http, "/v1/models");
        models.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()).Should().Contain(done.ModelId);
        var chat = await http.PostAsJsonAsync("/v1/chat/completions", new
        {
            model = done.ModelId,
            messages = new[] { new { role = "user", content = "The coffee was superb and the music seemed lovely" } },
            max_tokens = 10,
            temperature = 0,
        }, Ct);
        var answer = await chat.Content.ReadFromJsonAsync<JsonElement>(Ct);
        chat.StatusCode.Should().Be(HttpStatusCode.OK, answer.ToString());
        answer.GetProperty("choices")[0].GetProperty("message").GetProperty("role").GetString().Should().Be("assistant");
        answer.GetProperty("usage").GetProperty("completion_tokens").GetInt32().Should().BeInRange(1, 10);
    }

    private static Guid JobOf(object message) => message switch
    {
        TrainingStarted m => m.JobId,
        TrainingProgressed m => m.JobId,
        CheckpointSaved m => m.JobId,
        TrainingCompleted m => m.JobId,
        TrainingFailed m => m.JobId,
        _ => Guid.Empty,
    };
}

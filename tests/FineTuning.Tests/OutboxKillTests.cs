using System.Collections.Concurrent;
using AspireTune.Contracts.FineTuning;
using AspireTune.TestSupport;
using MassTransit;
using Npgsql;

namespace AspireTune.FineTuning.Tests;

/// <summary>
/// The transactional outbox with a real process, broker and database: the API commits a job and its
/// <c>StartFineTuning</c> while the broker refuses every publish, the process is killed with SIGKILL before the
/// command could leave, and the next process on the same database sends it: once, with the id it was written with.
/// </summary>
[Collection(TrainingCollection.Name)]
public sealed class OutboxKillTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task CreateJob_ProcessKilledBetweenCommitAndPublish_CommandGoesOutExactlyOnceAfterRestart()
    {
        var broker = await RabbitMqAdmin.TryCreateVirtualHostAsync("outbox-kill");
        if (broker is null)
            Assert.Skip("rabbitmqctl cannot reach a local RabbitMQ node, so the broker cannot be made to refuse publishes.");
        var vhost = RabbitMqAdmin.VirtualHostOf(broker);
        var data = TestInfrastructure.TempDataFolder("outbox-kill");
        var database = TestInfrastructure.PostgresDatabase("outbox_kill");
        var environment = new Dictionary<string, string?> { ["ConnectionStrings__messaging"] = broker, ["FineTuning__WorkerEnabled"] = "false", ["Outbox__ConfirmTimeoutSeconds"] = "2" };

        // Every copy of StartFineTuning that reaches the broker lands in this queue too.
        var seen = new ConcurrentQueue<Guid?>();
        var observer = Bus.Factory.CreateUsingRabbitMq(cfg =>
        {
            cfg.Host(new Uri(broker));
            cfg.ReceiveEndpoint($"outbox-kill-observer-{Guid.NewGuid():N}", e =>
            {
                e.ConfigureConsumeTopology = false;
                e.Bind("start-fine-tuning");
                e.Handler<StartFineTuning>(c =>
                {
                    seen.Enqueue(c.MessageId);
                    return Task.CompletedTask;
                });
            });
        });
        await observer.StartAsync(Ct);
        try
        {
            string jobId;
            await using (var first = FineTuningProcess.Start(data, database, environment))
            {
                using var http = new HttpClient { BaseAddress = first.BaseAddress };
                await first.WaitUntilHealthyAsync(Ct);
                var file = await Api.UploadAsync(http, TestData.Jsonl(TestData.ChatLines(20)));

                await RabbitMqAdmin.AllowWritesAsync(vhost, false);
                var job = await Api.CreateJobAsync(http, new { model = "aspiretune-tiny", training_file = file.GetProperty("id").GetString() });
                jobId = job.GetProperty("id").GetString()!;
                await WaitAsync(() => Task.FromResult(first.Output.Contains("outbox delivery failed")), "the outbox to try and fail to publish\n" + first.Output);
                first.Kill();
            }
            var (messageId, delivered) = await OutboxRowAsync(database);
            delivered.Should().BeFalse("the process died before the broker took the command");
            seen.Should().BeEmpty();

            await RabbitMqAdmin.AllowWritesAsync(vhost, true);
            await using var second = FineTuningProcess.Start(data, database, environment);
            using var http2 = new HttpClient { BaseAddress = second.BaseAddress };
            await second.WaitUntilHealthyAsync(Ct);
            var validated = await Api.WaitForJobAsync(http2, jobId, TimeSpan.FromMinutes(1), "queued", "failed");
            await WaitAsync(async () => (await OutboxRowAsync(database)).Delivered && !seen.IsEmpty, "the command to be marked delivered");

            validated.GetProperty("status").GetString().Should().Be("queued", validated + "\n" + second.Output);
            seen.Should().Equal([messageId], "the command left once, with the message id the API's transaction wrote");
            (await ScalarAsync(database, $"SELECT COUNT(*) FROM processed_messages WHERE \"MessageId\" = '{messageId}'")).Should().Be(1);
        }
        finally
        {
            await observer.StopAsync(CancellationToken.None);
            await RabbitMqAdmin.DeleteVirtualHostAsync(vhost);
        }
    }

    private static async Task<(Guid MessageId, bool Delivered)> OutboxRowAsync(string database)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync(Ct);
        await using var command = new NpgsqlCommand("SELECT \"MessageId\", \"DeliveredAt\" IS NOT NULL FROM outbox_messages WHERE \"MessageType\" LIKE 'AspireTune.Contracts.FineTuning.StartFineTuning,%'", connection);
        await using var reader = await command.ExecuteReaderAsync(Ct);
        (await reader.ReadAsync(Ct)).Should().BeTrue("the API wrote the command to its outbox");
        var row = (reader.GetGuid(0), reader.GetBoolean(1));
        (await reader.ReadAsync(Ct)).Should().BeFalse("one command was written");
        return row;
    }

    private static async Task<long> ScalarAsync(string database, string sql)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync(Ct);
        await using var command = new NpgsqlCommand(sql, connection);
        return (long)(await command.ExecuteScalarAsync(Ct))!;
    }

    private static async Task WaitAsync(Func<Task<bool>> condition, string what)
    {
        var until = DateTime.UtcNow.AddMinutes(1);
        while (!await condition())
        {
            if (DateTime.UtcNow > until)
                throw new TimeoutException("Waited a minute for " + what);
            await Task.Delay(100, Ct);
        }
    }
}

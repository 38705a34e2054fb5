using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using AspireTune.Contracts.FineTuning;
using AspireTune.FineTuning.Data;
using AspireTune.ServiceDefaults.Artifacts;
using AspireTune.ServiceDefaults.Messaging;
using AspireTune.ServiceDefaults.Security;
using AspireTune.TestSupport;
using Microsoft.Extensions.DependencyInjection;

namespace AspireTune.FineTuning.Tests;

/// <summary>A job paused before it trains: while its files are validated, and across a restart of the service.</summary>
[Collection(TrainingCollection.Name)]
public sealed class PauseBeforeTrainingTests
{
    private const string OperatorKey = "sk-pause-operator-key";
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task Pause_JobInValidatingFiles_IsValidatedButStaysPausedAcrossARestartUntilResumed(string database)
    {
        var data = TestInfrastructure.TempDataFolder("pause");
        var settings = new Dictionary<string, string?>
        {
            ["ASPIRETUNE_DATA"] = data,
            // The pause and its event commit in one transaction of the caller's, which PostgreSQL's retrying strategy must allow.
            ["ConnectionStrings:finetuningdb"] = database == "postgresql" ? TestInfrastructure.PostgresDatabase("finetuning_pause") : null,
            ["Authentication:ApiKeys:Accounts:0:Name"] = "ops-alice",
            ["Authentication:ApiKeys:Accounts:0:KeyHash"] = ApiKeyAuthenticationHandler.Hash(OperatorKey),
            ["Authentication:ApiKeys:Accounts:0:Roles:0"] = "operator",
        };
        var id = Guid.NewGuid();
        var path = $"ftjob-{id:N}";
        try
        {
            HttpResponseMessage pausedEarly, resumedEarly, pausedAgain;
            JsonElement validated;
            List<string?> types;
            TrainingPaused pausedEvent;
            TrainingResumed resumedEarlyEvent;
            await using (var factory = new FineTuningFactory(settings))
            {
                var http = Authorized(factory.CreateClient());
                await using var bus = await BusEvents.ListenAsync(factory.Services, Ct);
                // The job as the API commits it, its StartFineTuning command not yet handled: it is validating_files.
                var job = await SeedValidatingJobAsync(factory.Services, id);

                pausedEarly = await http.PostAsync($"/v1/fine_tuning/jobs/{path}/pause", null, Ct);
                resumedEarly = await http.PostAsync($"/api/fine-tuning/jobs/{path}/resume", null, Ct);
                pausedAgain = await http.PostAsync($"/api/fine-tuning/jobs/{path}/pause", null, Ct);
                pausedEvent = await bus.WaitAsync<TrainingPaused>(e => e.JobId == id, Ct);
                resumedEarlyEvent = await bus.WaitAsync<TrainingResumed>(e => e.JobId == id, Ct);
                // Now the command arrives: the files are validated, the job is not queued.
                await using (var scope = factory.Services.CreateAsyncScope())
                {
                    var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
                    db.SendOnCommit(Jobs.JobSubmitter.StartFineTuningQueue, Apis.JobsApi.ToCommand(job));
                    await db.SaveChangesAsync(Ct);
                }
                types = await WaitForEventTypeAsync(http, path, "validated_paused");
                validated = await Api.GetJsonAsync(http, $"/api/fine-tuning/jobs/{path}");
            }

            pausedEarly.StatusCode.Should().Be(HttpStatusCode.OK);
            (await pausedEarly.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("status").GetString().Should().Be("paused");
            resumedEarly.StatusCode.Should().Be(HttpStatusCode.OK);
            (await resumedEarly.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("status").GetString().Should().Be("validating_files", "its files were not validated yet");
            pausedAgain.StatusCode.Should().Be(HttpStatusCode.OK);
            pausedEvent.PausedFrom.Should().Be("validating_files");
            pausedEvent.Step.Should().Be(0);
            pausedEvent.CheckpointId.Should().BeNull();
            pausedEvent.RequestedBy.Should().Be("ops-alice");
            resumedEarlyEvent.Status.Should().Be("validating_files");
            resumedEarlyEvent.RequestedBy.Should().Be("ops-alice");
            validated.GetProperty("status").GetString().Should().Be("paused", validated.ToString());
            validated.GetProperty("total_steps").GetInt32().Should().BeGreaterThan(0, "validation resolved the plan");
            types.Should().Contain("validated").And.NotContain("queued");

            // Restarted on the same database: still paused, and no worker trains it until it is resumed.
            await using (var factory = new FineTuningFactory(settings))
            {
                var http = Authorized(factory.CreateClient());
                await using var bus = await BusEvents.ListenAsync(factory.Services, Ct);
                await Task.Delay(2500, Ct); // many worker polls (200 ms): a paused job is not claimed
                var afterRestart = await Api.GetJsonAsync(http, $"/api/fine-tuning/jobs/{path}");
                var typesAfterRestart = await EventTypesAsync(http, path);
                var resumed = await http.PostAsync($"/v1/fine_tuning/jobs/{path}/resume", null, Ct);
                var resumedBody = await resumed.Content.ReadFromJsonAsync<JsonElement>(Ct);
                var resumedEvent = await bus.WaitAsync<TrainingResumed>(e => e.JobId == id && e.Status == "queued", Ct);
                var finished = await Api.WaitForJobAsync(http, path, TimeSpan.FromMinutes(2));

                afterRestart.GetProperty("status").GetString().Should().Be("paused");
                afterRestart.GetProperty("step").GetInt32().Should().Be(0);
                typesAfterRestart.Should().NotContain("started");
                resumed.StatusCode.Should().Be(HttpStatusCode.OK, resumedBody.ToString());
                resumedBody.GetProperty("status").GetString().Should().Be("queued");
                resumedEvent.CheckpointId.Should().BeNull("it never trained: the run starts from the base model");
                resumedEvent.RequestedBy.Should().Be("ops-alice");
                finished.GetProperty("status").GetString().Should().Be("succeeded", finished.ToString());
            }
        }
        finally
        {
            try
            {
                Directory.Delete(data, recursive: true);
            }
            catch (IOException)
            {
                // A file still held open by a stopping thread; the temp folder is cleaned by the OS later.
            }
        }
    }

    private static HttpClient Authorized(HttpClient http)
    {
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", OperatorKey);
        return http;
    }

    private static async Task<FineTuningJob> SeedValidatingJobAsync(IServiceProvider services, Guid id)
    {
        var artifact = await services.GetRequiredService<IArtifactStore>()
            .PutAsync(new MemoryStream(TestData.Jsonl(TestData.ChatLines(20))), "datasets", "train.jsonl", "application/jsonl", Ct);
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
        var job = new FineTuningJob
        {
            Id = id,
            BaseModel = "aspiretune-tiny",
            Status = JobStatus.ValidatingFiles,
            TrainingArtifactId = artifact.Id,
            TrainingSha256 = artifact.Sha256,
            TrainingBytes = artifact.Length,
            RequestedHyperparameters = new() { ["n_epochs"] = "1", ["batch_size"] = "4" },
        };
        db.Jobs.Add(job);
        await db.SaveChangesAsync(Ct);
        return job;
    }

    private static async Task<List<string?>> EventTypesAsync(HttpClient http, string path) =>
        [.. (await Api.GetJsonAsync(http, $"/api/fine-tuning/jobs/{path}/events?limit=1000")).GetProperty("data").EnumerateArray().Select(e => e.GetProperty("type").GetString())];

    private static async Task<List<string?>> WaitForEventTypeAsync(HttpClient http, string path, string type)
    {
        var until = DateTime.UtcNow.AddMinutes(1);
        while (true)
        {
            var types = await EventTypesAsync(http, path);
            if (types.Contains(type) || DateTime.UtcNow > until)
                return types;
            await Task.Delay(100, Ct);
        }
    }
}

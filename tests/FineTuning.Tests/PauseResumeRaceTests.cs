using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using AspireTune.Contracts.FineTuning;
using static AspireTune.FineTuning.Tests.OpenAiFineTuningSdkTests;

namespace AspireTune.FineTuning.Tests;

/// <summary>A pause taken back before the job's worker stopped for it: the worker goes on, nothing is trained twice.</summary>
[Collection(TrainingCollection.Name)]
public sealed class PauseResumeRaceTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task PauseThenResume_BeforeTheWorkersHeartbeat_JobRunsOnWithoutStoppingOrRetraining()
    {
        // A long heartbeat: the worker looks at the job's status only every 20 s, so both calls land between two looks.
        await using var factory = new FineTuningFactory(new Dictionary<string, string?> { ["FineTuning:HeartbeatSeconds"] = "20" });
        var http = factory.CreateClient();
        await using var bus = await BusEvents.ListenAsync(factory.Services, Ct);
        var training = await Api.UploadAsync(http, TestData.Jsonl(TestData.ChatLines(40)));
        var id = await StartPausableJobAsync(http, training.GetProperty("id").GetString()!);

        var paused = await http.PostAsync($"/v1/fine_tuning/jobs/{id}/pause", null, Ct);
        var resumed = await http.PostAsync($"/v1/fine_tuning/jobs/{id}/resume", null, Ct);
        var resumedBody = await resumed.Content.ReadFromJsonAsync<JsonElement>(Ct);
        var resumedEvent = await bus.WaitAsync<TrainingResumed>(e => e.JobId.ToString("N") == id["ftjob-".Length..], Ct);
        var job = await Api.WaitForJobAsync(http, id, TimeSpan.FromMinutes(2));
        var messages = (await JsonAsync(http, $"/v1/fine_tuning/jobs/{id}/events?limit=1000")).GetProperty("data").EnumerateArray().Select(e => e.GetProperty("message").GetString()!).ToList();

        paused.StatusCode.Should().Be(HttpStatusCode.OK);
        resumed.StatusCode.Should().Be(HttpStatusCode.OK, resumedBody.ToString());
        resumedBody.GetProperty("status").GetString().Should().Be("running", "its worker never stopped: the job is running, not queued while it trains");
        resumedEvent.Status.Should().Be("running");
        job.GetProperty("status").GetString().Should().Be("succeeded", job.ToString());
        job.GetProperty("attempts").GetInt32().Should().Be(1, "one run trained the job from start to end");
        messages.Should().Contain(m => m.StartsWith("Job resumed before its worker stopped", StringComparison.Ordinal));
        messages.Should().NotContain(m => m.StartsWith("Training paused at step", StringComparison.Ordinal) || m.StartsWith("Training resumed from step", StringComparison.Ordinal));
    }
}

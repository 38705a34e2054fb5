using System.Diagnostics;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using AspireTune.TestSupport;

namespace AspireTune.FineTuning.Tests;

/// <summary>
/// Real worker processes (the service's own executable) on one PostgreSQL database: the first is killed
/// with SIGKILL mid-training, the second, started on the same data folder, has the same worker identity and
/// takes the job back at once (the lease lasts ten minutes, longer than the test waits) and resumes it.
/// </summary>
[Collection(TrainingCollection.Name)]
public sealed class WorkerKillTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>A wider model than the other tests, so training lasts long enough to be killed part-way; a lease of ten minutes.</summary>
    private static readonly Dictionary<string, string?> WideModel = new()
    {
        ["FineTuning__BuiltIn__Hidden"] = "128",
        ["FineTuning__BuiltIn__Heads"] = "4",
        ["FineTuning__ExactMatchExamples"] = "0",
        ["FineTuning__LeaseSeconds"] = "600",
    };

    [Fact]
    public async Task KilledWorker_JobIsResumedFromItsLastCheckpointByAnotherWorkerAndSucceedsOnce()
    {
        var data = TestInfrastructure.TempDataFolder("finetuning-kill");
        var database = TestInfrastructure.PostgresDatabase("finetuning_kill");
        await using var first = FineTuningProcess.Start(data, database, WideModel);
        using var http = new HttpClient { BaseAddress = first.BaseAddress };
        await first.WaitUntilHealthyAsync(Ct);

        var file = await Api.UploadAsync(http, TestData.Jsonl(TestData.ChatLines(110)));
        var job = await Api.CreateJobAsync(http, new
        {
            model = "aspiretune-tiny",
            training_file = file.GetProperty("id").GetString(),
            hyperparameters = new Dictionary<string, object> { ["n_epochs"] = 3, ["batch_size"] = 2, ["eval_interval"] = 10, ["checkpoint_interval"] = 10 },
        });
        var jobId = job.GetProperty("id").GetString()!;

        // Kill as soon as a checkpoint is recorded: the job is mid-way, with something to resume from.
        var checkpointStep = 0;
        var until = DateTime.UtcNow.AddMinutes(2);
        while (checkpointStep == 0)
        {
            var checkpoints = await Api.GetJsonAsync(http, $"/api/fine-tuning/jobs/{jobId}/checkpoints");
            if (checkpoints.GetProperty("data").GetArrayLength() > 0)
                checkpointStep = checkpoints.GetProperty("data")[0].GetProperty("step_number").GetInt32();
            else if (DateTime.UtcNow > until)
                throw new TimeoutException("No checkpoint within two minutes.\n" + first.Output);
            else
                await Task.Delay(50, Ct);
        }
        first.Kill();
        await using var second = FineTuningProcess.Start(data, database, WideModel);
        using var http2 = new HttpClient { BaseAddress = second.BaseAddress };
        await second.WaitUntilHealthyAsync(Ct);
        var finished = await Api.WaitForJobAsync(http2, jobId, TimeSpan.FromMinutes(8));

        finished.GetProperty("status").GetString().Should().Be("succeeded", finished + "\n--- second worker ---\n" + second.Output);
        finished.GetProperty("attempts").GetInt32().Should().Be(2);
        finished.GetProperty("total_steps").GetInt32().Should().BeGreaterThan(checkpointStep, "the kill came before the end");
        var events = (await Api.GetJsonAsync(http2, $"/api/fine-tuning/jobs/{jobId}/events?limit=1000")).GetProperty("data").EnumerateArray().ToList();
        var started = events.Where(e => e.GetProperty("type").GetString() == "started").Select(e => e.GetProperty("message").GetString()!).ToList();
        started.Should().HaveCount(2);
        started[1].Should().MatchRegex(@"^Training resumed from step \d+ ");
        int.Parse(started[1].Split(' ')[4]).Should().BeGreaterThanOrEqualTo(checkpointStep);
        events.Count(e => e.GetProperty("type").GetString() == "succeeded").Should().Be(1);
        var models = await Api.GetJsonAsync(http2, "/api/models");
        models.GetProperty("data").EnumerateArray().Count(m => m.GetProperty("lineage").GetProperty("job_id").GetString() == jobId).Should().Be(1);
        second.Output.Should().Contain("resume from").And.Contain("checkpoint-");
        // Every console log entry starts with its UTC ISO 8601 time.
        var entries = second.Output.Split('\n').Where(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"\b(info|warn|fail|crit|dbug|trce): ")).ToList();
        entries.Should().NotBeEmpty().And.OnlyContain(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z (info|warn|fail|crit|dbug|trce): "));
    }
}

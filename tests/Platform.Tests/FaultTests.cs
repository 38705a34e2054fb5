using System.Net.Http.Json;
using System.Text.Json.Nodes;
using AspireTune.TestSupport;

namespace AspireTune.Platform.Tests;

/// <summary>
/// The undisturbed run every fault test compares with: the experiment with the same seed and settings on a deployment
/// of its own, which stays up for the fine-tuning worker test (its worker has then run one job since it started).
/// </summary>
public sealed class CleanRun : IAsyncLifetime
{
    private string? _vhost;

    public FaultScenario? Scenario { get; private set; }

    public ExperimentResults Results { get; private set; } = null!;

    /// <summary>Evaluation runs of an undisturbed experiment (prompt selection, then each candidate on the test split).</summary>
    public int EvaluationRuns { get; private set; }

    public async ValueTask InitializeAsync()
    {
        _vhost = await RabbitMqAdmin.TryCreateVirtualHostAsync("faults-clean");
        if (_vhost is null)
            return;
        Scenario = await FaultScenario.StartAsync(_vhost, TestInfrastructure.PostgresServer);
        var id = await Scenario.StartExperimentAsync("clean");
        var experiment = await Scenario.WaitForExperimentAsync(id, TimeSpan.FromMinutes(3));
        EvaluationRuns = (await Scenario.RunsAsync(id)).Count;
        await Scenario.AssertSucceededOnceAsync(id, experiment, EvaluationRuns);
        Results = await Scenario.ResultsAsync(id);
    }

    public async ValueTask DisposeAsync()
    {
        if (Scenario is not null)
            await Scenario.DisposeAsync();
        if (_vhost is not null)
            await RabbitMqAdmin.DeleteVirtualHostAsync(RabbitMqAdmin.VirtualHostOf(_vhost));
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class FaultCollection
{
    public const string Name = "fault tests";
}

/// <summary>
/// Faults injected into a running experiment on the distributed topology (the four services as processes on RabbitMQ
/// and PostgreSQL): SIGKILL of each service mid-work, a broker stop and start, a database restart. Each ends
/// with the experiment succeeded exactly once and the same results as <see cref="CleanRun"/>. Every test has its own
/// virtual host, databases, ports and data folders; the broker and database that are stopped are servers of the test's
/// own (the shared ones are never touched).
/// </summary>
[Collection(FaultCollection.Name)]
public sealed class FaultTests(CleanRun clean) : IClassFixture<CleanRun>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task FineTuningWorkerKilled_AfterSecondCheckpointOfItsSecondJob_ResumesFromThatCheckpointAndExperimentSucceedsOnce()
    {
        // The clean run's deployment: its worker has run one job (the clean experiment's) since it started.
        var scenario = clean.Scenario ?? throw new InvalidOperationException("The clean run did not start.");
        var id = await scenario.StartExperimentAsync("worker-kill");
        List<CheckpointScores> seen = [];
        var jobId = "";
        await scenario.WaitUntilAsync(async () =>
        {
            if (await scenario.ExperimentJobAsync(id) is not { } job)
                return false;
            jobId = job["id"]!.GetValue<string>();
            seen = await scenario.CheckpointsAsync(jobId);
            return seen.Count >= 2;
        }, "the experiment's job to record two checkpoints");
        scenario.Deployment.Kill("finetuning");
        // The last checkpoint the killed worker recorded (the API saw two; one more may have landed before the kill).
        var killedAt = (int)await scenario.ScalarAsync("finetuning", $"SELECT MAX(\"Step\") FROM job_checkpoints WHERE \"JobId\" = '{Guid.Parse(jobId["ftjob-".Length..])}'");
        killedAt.Should().BeGreaterThanOrEqualTo(seen.Max(c => c.Step)).And.BeLessThan(FaultScenario.TrainingSteps, "the worker was killed before the job's end");

        await scenario.Deployment.StartAsync("finetuning", Ct);
        (await scenario.JobsAsync()).Should().HaveCount(2, "the killed worker had run the clean experiment's job before this one");
        await scenario.AssertSettlesOnceWithResultsAsync(id, clean.Results, clean.EvaluationRuns);
        using var finetuning = scenario.Deployment.Client("finetuning");
        var events = (await finetuning.GetFromJsonAsync<JsonObject>($"api/fine-tuning/jobs/{jobId}/events?limit=1000", Ct))!["data"]!.AsArray()
            .Select(e => e!.AsObject()).ToList();
        var started = events.Where(e => e["type"]!.GetValue<string>() == "started").Select(e => e["message"]!.GetValue<string>()).ToList();
        started.Should().HaveCount(2, string.Join('\n', events.Select(e => e.ToJsonString())));
        started[0].Should().NotStartWith("Training resumed");
        started[1].Should().StartWith($"Training resumed from step {killedAt} ", "the job went on from its last checkpoint, not from step 0");
        (await scenario.ExperimentJobAsync(id))!["attempts"]!.GetValue<int>().Should().Be(2);
    }

    [Fact]
    public async Task ComparisonKilled_WhileCandidatesRun_ExperimentSucceedsOnceWithTheSameResults()
    {
        await using var shared = await SharedBrokerAsync("faults-comparison");
        await using var scenario = await FaultScenario.StartAsync(shared.Uri, TestInfrastructure.PostgresServer);
        var id = await scenario.StartExperimentAsync("comparison-kill");
        await scenario.WaitUntilAsync(async () => await scenario.JobStatusAsync(id) == "running", "the fine-tuning job to start");

        scenario.Deployment.Kill("comparison");
        // While Comparison is away the other services finish their part: their events wait in its queues.
        await scenario.WaitUntilAsync(async () => await scenario.JobStatusAsync(id) == "succeeded"
                && (await scenario.RunsAsync(id)).Any(r => r["status"]!.GetValue<string>() == "Completed"), "training and prompt selection to finish without Comparison");
        await scenario.Deployment.StartAsync("comparison", Ct);
        await scenario.AssertSettlesOnceWithResultsAsync(id, clean.Results, clean.EvaluationRuns);
    }

    [Fact]
    public async Task EvaluationKilled_MidRun_RunResumesWithoutRepeatsAndExperimentSucceedsOnceWithTheSameResults() =>
        await KilledAndRestartedAsync("evaluation", async (scenario, id) => (await scenario.RunsAsync(id))
            .Any(r => r["completedCalls"]!.GetValue<int>() is > 0 and var done && done < r["totalCalls"]!.GetValue<int>()), "a run with part of its results stored");

    [Fact]
    public async Task RetrievalKilled_OnceIndexingIsSent_ExperimentSucceedsOnceWithTheSameResults() =>
        // Indexing a small set may be done or under way: an unacknowledged command is redelivered, and the retrieval
        // candidate's queries during evaluation meet the restarted process either way.
        await KilledAndRestartedAsync("retrieval", async (scenario, id) => (await scenario.ExperimentAsync(id))["log"]!.AsArray()
            .Any(l => l!["message"]!.GetValue<string>().StartsWith("Indexing", StringComparison.Ordinal)), "the indexing command to be sent");

    /// <summary>
    /// An experiment on a deployment of its own: once <paramref name="ready"/> holds, <paramref name="service"/> is
    /// SIGKILLed and started again, and the experiment must settle once with the clean run's results.
    /// </summary>
    private async Task KilledAndRestartedAsync(string service, Func<FaultScenario, Guid, Task<bool>> ready, string what)
    {
        await using var shared = await SharedBrokerAsync($"faults-{service}");
        await using var scenario = await FaultScenario.StartAsync(shared.Uri, TestInfrastructure.PostgresServer);
        var id = await scenario.StartExperimentAsync($"{service}-kill");
        await scenario.WaitUntilAsync(() => ready(scenario, id), what);

        scenario.Deployment.Kill(service);
        await scenario.Deployment.StartAsync(service, Ct);
        await scenario.AssertSettlesOnceWithResultsAsync(id, clean.Results, clean.EvaluationRuns);
    }

    [Fact]
    public async Task BrokerStoppedAndStarted_WhileTrainingRuns_EventsWaitInTheOutboxAndExperimentSucceedsOnce()
    {
        await using var broker = LocalRabbitMq.TryCreate();
        if (broker is null)
            Assert.Skip("Debian's rabbitmq-server is not installed, so no broker of the test's own can be stopped.");
        await broker.StartAsync(Ct);
        await using var scenario = await FaultScenario.StartAsync(broker.Uri, TestInfrastructure.PostgresServer);
        var id = await scenario.StartExperimentAsync("broker-restart");
        await scenario.WaitUntilAsync(async () => await scenario.JobStatusAsync(id) == "running", "the fine-tuning job to start");

        await broker.StopAsync(Ct);
        // Training needs only the database: it finishes while the broker is away, and what it announces stays in the outbox.
        await scenario.WaitUntilAsync(async () => await scenario.JobStatusAsync(id) == "succeeded", "training to finish without the broker");
        (await scenario.UndeliveredAsync("finetuning")).Should().BePositive("TrainingCompleted cannot leave while the broker is stopped");
        await broker.StartAsync(Ct);
        await scenario.AssertSettlesOnceWithResultsAsync(id, clean.Results, clean.EvaluationRuns);
    }

    [Fact]
    public async Task DatabaseRestarted_WhileTrainingAndEvaluationRun_ExperimentSucceedsOnceWithTheSameResults()
    {
        await using var postgres = LocalPostgres.TryCreate();
        if (postgres is null)
            Assert.Skip("Debian's PostgreSQL server is not installed, so no database server of the test's own can be restarted.");
        await postgres.StartAsync(Ct);
        await using var shared = await SharedBrokerAsync("faults-database");
        await using var scenario = await FaultScenario.StartAsync(shared.Uri, postgres.Server);
        var id = await scenario.StartExperimentAsync("database-restart");
        await scenario.WaitUntilAsync(async () => await scenario.JobStatusAsync(id) == "running"
                && (await scenario.RunsAsync(id)).Any(r => r["completedCalls"]!.GetValue<int>() > 0), "training and an evaluation run to be under way");

        await postgres.StopAsync(Ct);
        await postgres.StartAsync(Ct);
        await scenario.AssertSettlesOnceWithResultsAsync(id, clean.Results, clean.EvaluationRuns);
    }

    /// <summary>A virtual host of the test's own on the shared broker, deleted at the end.</summary>
    private static async Task<VirtualHost> SharedBrokerAsync(string prefix)
    {
        var uri = await RabbitMqAdmin.TryCreateVirtualHostAsync(prefix);
        if (uri is null)
            Assert.Skip("rabbitmqctl cannot reach a local RabbitMQ node, so no virtual host of the test's own can be made.");
        return new VirtualHost(uri);
    }

    private sealed record VirtualHost(string Uri) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync() => await RabbitMqAdmin.DeleteVirtualHostAsync(RabbitMqAdmin.VirtualHostOf(Uri));
    }
}

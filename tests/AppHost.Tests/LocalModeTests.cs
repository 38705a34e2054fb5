using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using AspireTune.TestSupport;
using Microsoft.Extensions.DependencyInjection;

namespace AspireTune.AppHost.Tests;

/// <summary>
/// The AppHost as operators run it without Docker: it starts Debian's RabbitMQ and PostgreSQL itself (own ports and data
/// folders), then the four services as separate processes; an experiment goes through all of them.
/// </summary>
public sealed class LocalModeTests
{
    private static readonly string[] Services = ["comparison", "evaluation", "retrieval", "finetuning"];

    [Fact]
    public async Task LocalMode_Experiment_SucceedsAcrossFourServiceProcessesInOneTraceAndLeavesNothingRunning()
    {
        var ct = TestContext.Current.CancellationToken;
        var data = TestInfrastructure.TempDataFolder("apphost");
        var serviceKey = "apphost-test-key-" + Guid.NewGuid().ToString("N");
        int amqp = TestInfrastructure.FreePort(), management = TestInfrastructure.FreePort(), epmd = TestInfrastructure.FreePort(),
            distribution = TestInfrastructure.FreePort(), postgres = TestInfrastructure.FreePort();
        await using var otlp = await OtlpReceiver.StartAsync(ct);

        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.AspireTune_AppHost>(
        [
            "--Infrastructure:Mode=local", $"--Infrastructure:DataPath={data}",
            $"--Infrastructure:Ports:Amqp={amqp}", $"--Infrastructure:Ports:Management={management}", $"--Infrastructure:Ports:Epmd={epmd}",
            $"--Infrastructure:Ports:RabbitMQDistribution={distribution}", $"--Infrastructure:Ports:Postgres={postgres}",
            $"--Parameters:service-account-key={serviceKey}",
            $"--Parameters:messaging-password={Guid.NewGuid():N}", $"--Parameters:postgres-password={Guid.NewGuid():N}",
        ], ct);
        foreach (var service in builder.Resources.OfType<ProjectResource>())
            builder.CreateResourceBuilder(service).WithEnvironment(context =>
            {
                // Telemetry to the receiver this test hosts (the dashboard's place), exported every second.
                context.EnvironmentVariables["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp.Endpoint;
                context.EnvironmentVariables["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf";
                context.EnvironmentVariables["OTEL_BSP_SCHEDULE_DELAY"] = "1000";
                context.EnvironmentVariables["OTEL_BLRP_SCHEDULE_DELAY"] = "1000";
                context.EnvironmentVariables["OTEL_METRIC_EXPORT_INTERVAL"] = "2000";
                // A small model and one short epoch: the fine-tuned candidate finishes in seconds on CPU.
                context.EnvironmentVariables["FineTuning__BuiltIn__Layers"] = "1";
                context.EnvironmentVariables["FineTuning__BuiltIn__Hidden"] = "32";
                context.EnvironmentVariables["FineTuning__BuiltIn__Heads"] = "2";
                context.EnvironmentVariables["FineTuning__ExactMatchExamples"] = "0";
                context.EnvironmentVariables["Comparison__FineTuningHyperparameters__n_epochs"] = "1";
                context.EnvironmentVariables["Comparison__FineTuningHyperparameters__batch_size"] = "16";
            });

        var app = await builder.BuildAsync(ct);
        try
        {
            await app.StartAsync(ct);
            var notifications = app.Services.GetRequiredService<ResourceNotificationService>();
            foreach (var resource in builder.Resources.Where(r => r is IResourceWithConnectionString or ProjectResource))
                await notifications.WaitForResourceHealthyAsync(resource.Name, ct).WaitAsync(TimeSpan.FromMinutes(3), ct);

            using var http = app.CreateHttpClient("comparison", "http");
            http.Timeout = TimeSpan.FromMinutes(2);
            (await http.GetAsync("api/experiments", ct)).StatusCode.Should().Be(HttpStatusCode.Unauthorized, "the services run with the service account on");
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", serviceKey);

            var response = await http.PostAsJsonAsync("api/experiments", new
            {
                name = "apphost-local",
                dataset = await File.ReadAllTextAsync(Path.Combine(RepositoryRoot(), "samples", "spam-assassin", "spam.jsonl"), ct),
                candidates = new[] { "prompted", "knn", "fine-tuned" },
            }, ct);
            response.StatusCode.Should().Be(HttpStatusCode.Accepted, await response.Content.ReadAsStringAsync(ct));
            var id = (await response.Content.ReadFromJsonAsync<JsonObject>(ct))!["id"]!.GetValue<Guid>();

            var experiment = await WaitForExperimentAsync(http, id, TimeSpan.FromMinutes(8), ct);

            experiment["status"]!.GetValue<string>().Should().Be("succeeded", experiment.ToJsonString());
            experiment["candidates"]!.AsArray().Should().OnlyContain(c => c!["status"]!.GetValue<string>() == "succeeded", experiment.ToJsonString());
            (await http.GetStringAsync($"api/experiments/{id}/report", ct)).Should().Contain("Decision");
            (await http.GetStringAsync("api/experiments/latest/report", ct)).Should().Contain("apphost-local", "the dashboard's 'Latest report' link shows this experiment");

            // The dashboard's "Run sample experiment" command starts one, authenticated with the service account.
            var command = await app.ResourceCommands.ExecuteCommandAsync("comparison", ServiceResources.SampleExperimentCommand, ct);
            command.Success.Should().BeTrue(command.Message);
            (await http.GetFromJsonAsync<JsonObject>("api/experiments", ct))!["items"]!.AsArray().Should().Contain(e => e!["name"]!.GetValue<string>().StartsWith("sample ", StringComparison.Ordinal));

            // One trace, begun by the POST above, reaches every service process.
            var trace = await WaitForAsync(() => otlp.Spans.GroupBy(s => s.TraceId)
                .FirstOrDefault(t => Services.All(service => t.Any(s => s.Service == service)) && t.Any(s => s.Name == "fine-tuning train")), TimeSpan.FromSeconds(30), ct);
            trace.Should().NotBeNull("one trace should span {0}; traces seen: {1}", string.Join(", ", Services),
                string.Join("; ", otlp.Spans.GroupBy(s => s.TraceId).Select(t => string.Join(",", t.Select(s => s.Service).Distinct()))));
            trace!.Should().Contain(s => s.Service == "comparison" && s.Name.StartsWith("POST", StringComparison.Ordinal));
            trace.Should().Contain(s => s.Scope == "MassTransit" && s.Service == "finetuning", "the fine-tuning command is consumed in the same trace");
            trace.Should().Contain(s => s.Service == "finetuning" && s.Name == "fine-tuning train", "training continues the experiment's trace");
            trace.Should().Contain(s => s.Service == "evaluation" && s.Name == "evaluation.run", "the evaluation run continues the experiment's trace");
            trace.Should().Contain(s => s.Scope == "Npgsql", "database calls are spans of the trace");
            // Model calls are gen_ai spans; without sensitive telemetry they carry no prompt or completion text.
            var modelCalls = trace.Where(s => s.Service == "evaluation" && s.AttributeKeys.Any(k => k.StartsWith("gen_ai.", StringComparison.Ordinal))).ToList();
            modelCalls.Should().NotBeEmpty();
            otlp.Spans.Should().NotContain(s => s.EventNames.Any(e => e.StartsWith("gen_ai.content", StringComparison.Ordinal)) || s.AttributeKeys.Contains("gen_ai.prompt"));

            // Logs carry the experiment and job ids; training reports loss, throughput and step as metrics.
            var experimentId = id.ToString();
            (await WaitForAsync(() => otlp.Logs.FirstOrDefault(l => l.Service == "finetuning" && l.Attributes.GetValueOrDefault("ExperimentId") == experimentId && l.Attributes.ContainsKey("JobId")),
                TimeSpan.FromSeconds(10), ct)).Should().NotBeNull("the training worker logs in a scope with the job and experiment ids");
            otlp.Logs.Should().Contain(l => l.Service == "evaluation" && l.Attributes.GetValueOrDefault("ExperimentId") == experimentId);
            var metrics = await WaitForAsync(() => otlp.Metrics.Where(m => m.Service == "finetuning").Select(m => m.Name).ToHashSet(),
                TimeSpan.FromSeconds(10), ct, accept: names => names.Contains("aspiretune.training.step"));
            metrics.Should().Contain(["aspiretune.training.loss", "aspiretune.training.tokens_per_second", "aspiretune.training.step"]);
        }
        finally
        {
            await app.StopAsync(CancellationToken.None);
            await app.DisposeAsync();
        }

        // Nothing the AppHost started outlives it: no broker, epmd, database server or service process.
        var leftovers = await WaitForAsync(() =>
        {
            var stray = StrayProcesses(data, epmd);
            return stray.Count == 0 ? [] : stray;
        }, TimeSpan.FromSeconds(60), CancellationToken.None, accept: l => l.Count == 0);
        leftovers.Should().BeEmpty();
    }

    /// <summary>Processes whose command line or environment names this test's data folder or epmd port.</summary>
    private static List<string> StrayProcesses(string data, int epmdPort)
    {
        var stray = new List<string>();
        foreach (var dir in Directory.EnumerateDirectories("/proc").Where(d => int.TryParse(Path.GetFileName(d), out _)))
        {
            try
            {
                var cmdline = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ');
                var environ = File.ReadAllText(Path.Combine(dir, "environ")).Replace('\0', ' ');
                if (cmdline.Contains(data, StringComparison.Ordinal) || cmdline.Contains($"-port {epmdPort}", StringComparison.Ordinal) || environ.Contains(data, StringComparison.Ordinal))
                    stray.Add($"{Path.GetFileName(dir)}: {cmdline}");
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return stray;
    }

    private static async Task<JsonObject> WaitForExperimentAsync(HttpClient http, Guid id, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var experiment = (await http.GetFromJsonAsync<JsonObject>($"api/experiments/{id}", ct))!;
            if (experiment["status"]!.GetValue<string>() is "succeeded" or "failed" or "cancelled" || DateTime.UtcNow > deadline)
                return experiment;
            await Task.Delay(500, ct);
        }
    }

    private static async Task<T> WaitForAsync<T>(Func<T> probe, TimeSpan timeout, CancellationToken ct, Func<T, bool>? accept = null)
    {
        accept ??= v => v is not null;
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var value = probe();
            if (accept(value) || DateTime.UtcNow > deadline)
                return value;
            await Task.Delay(500, ct);
        }
    }

    private static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "AspireTune.sln")))
            dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Run the tests from inside the repository.");
    }
}

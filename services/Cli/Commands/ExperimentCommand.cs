using System.CommandLine;
using System.Net.Http.Json;
using System.Text.Json;
using AspireTune.Contracts.Common;
using AspireTune.Contracts.Comparison;
using AspireTune.Contracts.FineTuning;
using AspireTune.ServiceDefaults.Data;
using MassTransit;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Spectre.Console;

namespace AspireTune.Cli.Commands;

/// <summary>
/// <c>aspiretune experiment run</c>: the whole decision on one dataset, in one process (embedded host), with
/// progress as it happens and the decision report at the end.
/// </summary>
public static class ExperimentCommand
{
    public static Command Create(Infrastructure.CliIo io, Infrastructure.ConnectionOptions connection)
    {
        var dataset = new Option<FileInfo>("--dataset") { Description = "Labelled JSONL: {\"input\", \"expected\"} per line.", Required = true };
        var name = new Option<string?>("--name") { Description = "Experiment name (default: the file name)." };
        var candidates = new Option<string>("--candidates") { Description = "Comma-separated: prompted, retrieval, fine-tuned, knn.", DefaultValueFactory = _ => "prompted,retrieval,fine-tuned,knn" };
        var baseModel = new Option<string?>("--base-model") { Description = "Registry id of the model to fine-tune and prompt (default Comparison:DefaultBaseModel)." };
        var endpoints = new Option<string?>("--endpoints") { Description = "Comma-separated Evaluation endpoint ids of hosted models to prompt (default: the base model served locally)." };
        var data = new Option<string?>("--data") { Description = "Data folder (default ASPIRETUNE_DATA, else ./data)." };
        var timeout = new Option<int>("--timeout-minutes") { Description = "Give up after this long.", DefaultValueFactory = _ => 60 };
        var run = new Command("run", "Run an experiment end to end in this process and write the decision report.")
        {
            dataset, name, candidates, baseModel, endpoints, data, timeout,
        };
        run.SetAction((parse, ct) => RunAsync(parse.GetValue(dataset)!, parse.GetValue(name), parse.GetValue(candidates)!, parse.GetValue(baseModel),
            parse.GetValue(endpoints), parse.GetValue(data), TimeSpan.FromMinutes(parse.GetValue(timeout)), ct));
        var experiment = new Command("experiment", "Run and inspect experiments.") { run };
        ExperimentInspectCommands.AddTo(experiment, io, connection);
        return experiment;
    }

    private static async Task<int> RunAsync(FileInfo dataset, string? name, string candidates, string? baseModel, string? endpoints, string? data, TimeSpan timeout, CancellationToken ct)
    {
        if (!dataset.Exists)
        {
            AnsiConsole.MarkupLineInterpolated($"[red]No dataset at {dataset.FullName}.[/]");
            return 2;
        }
        // Port 0: the OS picks a free loopback port, so a second run never collides with a running server.
        var app = EmbeddedHost.Build(ServeCommand.HostArgs("http://127.0.0.1:0", data), builder =>
        {
            // The console shows the experiment's own log; the hosts add only warnings and errors. Retries after an
            // optimistic-concurrency conflict are the workflow working as designed, not worth a warning here.
            builder.Logging.AddFilter((category, level) => level >= LogLevel.Warning
                && category?.StartsWith("AspireTune.ServiceDefaults.Security", StringComparison.Ordinal) != true
                && (category != "MassTransit.ReceiveTransport" || level >= LogLevel.Error));
        });
        await app.StartAsync(ct);
        var baseUrl = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        EmbeddedHost.PointServicesAt(app, baseUrl);
        using var http = new HttpClient { BaseAddress = new Uri(baseUrl), Timeout = TimeSpan.FromMinutes(5) };

        var training = new TrainingProgressView();
        var bus = app.Services.GetRequiredService<IBus>();
        var handle = bus.ConnectReceiveEndpoint(new TemporaryEndpointDefinition(), KebabCaseEndpointNameFormatter.Instance,
            e => e.Handler<TrainingProgressed>(ctx => { training.Update(ctx.Message); return Task.CompletedTask; }));
        await handle.Ready;
        try
        {
            var request = new CreateExperimentRequest
            {
                Name = name ?? Path.GetFileNameWithoutExtension(dataset.Name),
                Dataset = await File.ReadAllTextAsync(dataset.FullName, ct),
                Candidates = candidates.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                ModelEndpoints = endpoints?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                BaseModel = baseModel,
            };
            using var response = await http.PostAsJsonAsync("api/experiments", request, ContractJson.Options, ct);
            if (!response.IsSuccessStatusCode)
            {
                AnsiConsole.MarkupLineInterpolated($"[red]The experiment was refused ({(int)response.StatusCode}):[/]");
                AnsiConsole.WriteLine(await response.Content.ReadAsStringAsync(ct));
                return 2;
            }
            var id = (await response.Content.ReadFromJsonAsync<ExperimentAccepted>(ContractJson.Options, ct))!.Id;
            AnsiConsole.MarkupLineInterpolated($"Experiment [bold]{id}[/] on [bold]{dataset.Name}[/] (embedded host at {baseUrl}, data in {app.Services.GetRequiredService<DataRoot>().Path})");

            var final = await FollowAsync(http, id, training, timeout, ct);
            return await ReportAsync(http, app.Services.GetRequiredService<DataRoot>(), id, final, ct);
        }
        finally
        {
            await handle.StopAsync(CancellationToken.None);
            await app.StopAsync(CancellationToken.None);
        }
    }

    /// <summary>Polls the experiment, printing each new log line and the training progress, until it settles.</summary>
    private static async Task<ExperimentView> FollowAsync(HttpClient http, Guid id, TrainingProgressView training, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = DateTimeOffset.UtcNow + timeout;
        var printed = 0;
        while (true)
        {
            var experiment = (await http.GetFromJsonAsync<ExperimentView>($"api/experiments/{id}", ContractJson.Options, ct))!;
            for (; printed < experiment.Log.Count; printed++)
                AnsiConsole.MarkupLineInterpolated($"[grey]{experiment.Log[printed].At:HH:mm:ss}[/] [blue]{experiment.Log[printed].Step,-11}[/] {experiment.Log[printed].Message}");
            training.PrintIfChanged();
            if (experiment.Status is "succeeded" or "failed" or "cancelled")
                return experiment;
            if (DateTimeOffset.UtcNow > deadline)
                throw new TimeoutException($"The experiment did not finish within {timeout}. It is still recorded: run 'aspiretune serve' to let it finish.");
            await Task.Delay(500, ct);
        }
    }

    private static async Task<int> ReportAsync(HttpClient http, DataRoot data, Guid id, ExperimentView experiment, CancellationToken ct)
    {
        if (experiment.Status != "succeeded")
        {
            AnsiConsole.MarkupLineInterpolated($"[red]Experiment {experiment.Status}: {experiment.Error}[/]");
            return 1;
        }
        var reportJson = await http.GetByteArrayAsync($"api/experiments/{id}/report.json", ct);
        var report = JsonSerializer.Deserialize<ExperimentReport>(reportJson, ContractJson.Options)!;
        // Fits 80 columns: long candidate names (fine-tuned model ids) keep their start and end, percentages lose their signs.
        var table = new Table().Border(TableBorder.Simple).AddColumns("candidate", "acc %", "95% CI", "F1", "invalid", "p95 ms", "USD/1k")
            .Caption("* on the Pareto front (accuracy, p95 latency, cost)");
        static string N(double value, string format, double scale = 1) => double.IsFinite(value) ? (value * scale).ToString(format, System.Globalization.CultureInfo.InvariantCulture) : "n/a";
        static string Short(string name) => name.Length <= 24 ? name : name[..12] + "~" + name[^11..];
        foreach (var c in report.Candidates)
            table.AddRow(Markup.Escape(Short(c.Name) + (c.OnParetoFront ? " *" : "")), N(c.Accuracy, "0.0", 100), $"{N(c.AccuracyLower, "0.0", 100)}-{N(c.AccuracyUpper, "0.0", 100)}",
                N(c.MacroF1, "0.00"), c.Invalid.ToString(System.Globalization.CultureInfo.InvariantCulture), N(c.LatencyP95, "0", 1000), N(c.CostPer1k, "0.###"));
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLineInterpolated($"[green bold]Decision: {experiment.Winner}[/]");
        AnsiConsole.WriteLine(experiment.Decision ?? "");

        var folder = data.Folder("reports");
        var html = Path.Combine(folder, $"{id}.html");
        await File.WriteAllBytesAsync(html, await http.GetByteArrayAsync($"api/experiments/{id}/report", ct), ct);
        await File.WriteAllBytesAsync(Path.Combine(folder, $"{id}.json"), reportJson, ct);
        AnsiConsole.MarkupLineInterpolated($"Report: [link]{html}[/]");
        return 0;
    }

    /// <summary>Training progress from TrainingProgressed events, printed as a bar at most once per poll.</summary>
    private sealed class TrainingProgressView
    {
        private TrainingProgressed? _latest;
        private int _printedStep = -1;

        public void Update(TrainingProgressed message) => Interlocked.Exchange(ref _latest, message);

        public void PrintIfChanged()
        {
            if (Volatile.Read(ref _latest) is not { } p || p.Step == _printedStep)
                return;
            _printedStep = p.Step;
            const int width = 30;
            var filled = p.TotalSteps == 0 ? 0 : (int)Math.Round(width * Math.Min(1, p.Step / (double)p.TotalSteps));
            var valid = p.ValidLoss is { } v ? $" valid_loss {v:0.000}" : "";
            AnsiConsole.MarkupLineInterpolated($"[grey]           training[/]  [[{new string('#', filled)}{new string('.', width - filled)}]] step {p.Step}/{p.TotalSteps} epoch {p.Epoch:0.00} loss {p.TrainLoss:0.000}{valid} lr {p.LearningRate:0.0e0} {p.TokensPerSecond:0} tok/s");
        }
    }
}

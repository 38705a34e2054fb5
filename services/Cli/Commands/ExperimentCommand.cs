using System.CommandLine;
using AspireTune.Cli.Infrastructure;
using AspireTune.Contracts.Comparison;
using AspireTune.Contracts.FineTuning;
using AspireTune.ServiceDefaults.Data;
using MassTransit;
using Spectre.Console;

namespace AspireTune.Cli.Commands;

/// <summary>
/// <c>aspiretune experiment run</c>: the whole decision on one dataset, in this process (embedded host) or on a
/// deployment (<c>--url</c>), with progress as it happens and the decision report at the end.
/// </summary>
public static class ExperimentCommand
{
    public static Command Create(CliIo io, ConnectionOptions connection)
    {
        var dataset = new Option<FileInfo>("--dataset") { Description = "Labelled JSONL: {\"input\", \"expected\"} per line (generation: expected is the reference answer).", Required = true };
        var name = new Option<string?>("--name") { Description = "Experiment name (default: the file name)." };
        var candidates = new Option<string?>("--candidates") { Description = "Comma-separated: prompted, retrieval, fine-tuned, knn (default all four)." };
        var task = new Option<string?>("--task") { Description = "classification (default) or generation (expected holds reference answers: text or JSON objects)." };
        var instruction = new Option<string?>("--instruction") { Description = "Generation: what to do with each input, written into the prompts." };
        var judge = new Option<string?>("--judge") { Description = "Generation: Evaluation endpoint id of a judge model that also grades every answer." };
        var baseModel = new Option<string?>("--base-model") { Description = "Registry id of the model to fine-tune and prompt (default Comparison:DefaultBaseModel)." };
        var endpoints = new Option<string?>("--endpoints") { Description = "Comma-separated Evaluation endpoint ids of hosted models to prompt (default: the base model served locally)." };
        var timeout = new Option<int>("--timeout-minutes") { Description = "Give up after this long.", DefaultValueFactory = _ => 60 };
        var open = new Option<bool>("--open") { Description = "Open the HTML report in the browser at the end." };
        var run = new Command("run", "Run an experiment end to end (in this process, or on --url) and write the decision report.")
        {
            dataset, name, candidates, task, instruction, judge, baseModel, endpoints, timeout, open,
        };
        run.SetServiceAction(io, connection, async (c, parse, ct) =>
        {
            var file = parse.GetValue(dataset)!;
            if (!file.Exists)
                throw new CliException($"No dataset at {file.FullName}.", ExitCodes.Usage);
            var request = new CreateExperimentRequest
            {
                Name = parse.GetValue(name) ?? Path.GetFileNameWithoutExtension(file.Name),
                Dataset = await File.ReadAllTextAsync(file.FullName, ct),
                Candidates = parse.GetValue(candidates)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                Task = parse.GetValue(task),
                Instruction = parse.GetValue(instruction),
                JudgeEndpoint = parse.GetValue(judge),
                ModelEndpoints = parse.GetValue(endpoints)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                BaseModel = parse.GetValue(baseModel),
            };
            var json = parse.GetValue(connection.Json);
            // With --json, stdout carries only the report: the live log goes to stderr.
            var log = json ? io.Err : io.Out;
            var training = new TrainingProgressView(log);
            HostReceiveEndpointHandle? handle = null;
            if (c.Host is not null)
            {
                // In this process the training progress comes straight from the bus (TrainingProgressed events).
                handle = c.Host.Services.GetRequiredService<IBus>().ConnectReceiveEndpoint(new TemporaryEndpointDefinition(), KebabCaseEndpointNameFormatter.Instance,
                    e => e.Handler<TrainingProgressed>(ctx => { training.Update(ctx.Message); return Task.CompletedTask; }));
                await handle.Ready;
            }
            try
            {
                var id = (await c.PostAsync<CreateExperimentRequest, ExperimentAccepted>("api/experiments", request, ct)).Id;
                log.MarkupLineInterpolated($"Experiment [bold]{id}[/] on [bold]{file.Name}[/] ({(c.Host is null ? c.BaseUrl : $"embedded host at {c.BaseUrl}, data in {c.Host.Services.GetRequiredService<DataRoot>().Path}")})");
                var final = await FollowAsync(c, log, id, training, TimeSpan.FromMinutes(parse.GetValue(timeout)), ct);
                return await ReportAsync(io, c, id, final, json, parse.GetValue(open), ct);
            }
            finally
            {
                if (handle is not null)
                    await handle.StopAsync(CancellationToken.None);
            }
        });
        var experiment = new Command("experiment", "Run and inspect experiments.") { run };
        ExperimentInspectCommands.AddTo(experiment, io, connection);
        return experiment;
    }

    /// <summary>Polls the experiment, printing each new log line and the training progress, until it settles.</summary>
    private static async Task<ExperimentView> FollowAsync(ServiceConnection c, IAnsiConsole log, Guid id, TrainingProgressView training, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = DateTimeOffset.UtcNow + timeout;
        var printed = 0;
        while (true)
        {
            var experiment = await c.GetAsync<ExperimentView>($"api/experiments/{id}", ct);
            for (; printed < experiment.Log.Count; printed++)
                log.MarkupLineInterpolated($"[grey]{experiment.Log[printed].At:HH:mm:ss}[/] [blue]{experiment.Log[printed].Step,-11}[/] {experiment.Log[printed].Message}");
            training.PrintIfChanged();
            if (experiment.Status is "succeeded" or "failed" or "cancelled")
                return experiment;
            if (DateTimeOffset.UtcNow > deadline)
                throw new CliException($"The experiment did not finish within {timeout}. It is still recorded: run 'aspiretune serve' (or keep the deployment running) to let it finish.");
            await Task.Delay(500, ct);
        }
    }

    private static async Task<int> ReportAsync(CliIo io, ServiceConnection c, Guid id, ExperimentView experiment, bool json, bool open, CancellationToken ct)
    {
        if (experiment.Status != "succeeded")
            throw new CliException($"Experiment {experiment.Status}: {experiment.Error}");
        var (report, html) = await ExperimentInspectCommands.DownloadReportAsync(c, id, null, ct);
        if (json)
            io.WriteJson(report);
        else
        {
            io.Write(ExperimentInspectCommands.ReportTable(report));
            io.Out.MarkupLineInterpolated($"[green bold]Decision: {experiment.Winner}[/]");
            io.Out.WriteLine(experiment.Decision ?? "");
            io.Out.MarkupLineInterpolated($"Report: [link]{html}[/]");
        }
        if (open)
            ExperimentInspectCommands.OpenInBrowser(io, html);
        return ExitCodes.Ok;
    }

    /// <summary>Training progress from TrainingProgressed events, printed as a bar at most once per poll.</summary>
    private sealed class TrainingProgressView(IAnsiConsole log)
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
            log.MarkupLineInterpolated($"[grey]           training[/]  [[{new string('#', filled)}{new string('.', width - filled)}]] step {p.Step}/{p.TotalSteps} epoch {p.Epoch:0.00} loss {p.TrainLoss:0.000}{valid} lr {p.LearningRate:0.0e0} {p.TokensPerSecond:0} tok/s");
        }
    }
}

using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using AspireTune.Cli.Infrastructure;
using AspireTune.Contracts.Common;
using AspireTune.Comparison.Apis;
using AspireTune.Contracts.Comparison;
using Spectre.Console;

namespace AspireTune.Cli.Commands;

/// <summary><c>aspiretune experiment list|show|report|cancel</c>: reading and stopping experiments.</summary>
public static class ExperimentInspectCommands
{
    private const string Experiments = "api/experiments";

    public static void AddTo(Command experiment, CliIo io, ConnectionOptions connection)
    {
        experiment.Subcommands.Add(List(io, connection));
        experiment.Subcommands.Add(Show(io, connection));
        experiment.Subcommands.Add(Report(io, connection));
        experiment.Subcommands.Add(Cancel(io, connection));
    }

    private static Command List(CliIo io, ConnectionOptions connection)
    {
        var page = new Option<int>("--page") { Description = "Page number (1-based).", DefaultValueFactory = _ => 1 };
        var size = new Option<int>("--page-size") { Description = "Experiments per page (1-200).", DefaultValueFactory = _ => 20 };
        var command = new Command("list", "List experiments, newest first.") { page, size };
        command.SetServiceAction(io, connection, async (c, parse, ct) =>
        {
            var found = await c.GetAsync<Page<ExperimentSummary>>($"{Experiments}?page={parse.GetValue(page)}&pageSize={parse.GetValue(size)}", ct);
            if (parse.GetValue(connection.Json))
            {
                io.WriteJson(found);
                return ExitCodes.Ok;
            }
            var table = CliIo.Table("id", "name", "status", "step", "winner", "created (UTC)");
            foreach (var e in found.Items)
                table.AddRow(e.Id.ToString(), Markup.Escape(e.Name), e.Status, e.Step, Markup.Escape(e.Winner ?? ""), EvaluationCommand.Time(e.CreatedAt));
            io.Write(table);
            io.Out.MarkupLineInterpolated($"[grey]page {found.PageNumber}, {found.Items.Count} of {found.Total}[/]");
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Show(CliIo io, ConnectionOptions connection)
    {
        var id = new Argument<Guid>("id") { Description = "Experiment id." };
        var command = new Command("show", "Show an experiment: task, status, candidates, decision and its log.") { id };
        command.SetServiceAction(io, connection, async (c, parse, ct) =>
        {
            var e = await c.GetAsync<ExperimentView>($"{Experiments}/{parse.GetValue(id)}", ct);
            if (parse.GetValue(connection.Json))
            {
                io.WriteJson(e);
                return ExitCodes.Ok;
            }
            io.Out.MarkupLineInterpolated($"Experiment [bold]{e.Name}[/] ({e.Id}): {e.Task.ToString().ToLowerInvariant()}, {e.Status}, step {e.Step}");
            var candidates = CliIo.Table("candidate", "kind", "status", "model endpoint", "error");
            foreach (var k in e.Candidates)
                candidates.AddRow(Markup.Escape(k.Name), k.Kind.ToString(), k.Status, Markup.Escape(k.ModelEndpoint ?? ""), Markup.Escape(k.Error ?? ""));
            io.Write(candidates);
            if (e.Winner is not null)
                io.Out.MarkupLineInterpolated($"[green bold]Decision: {e.Winner}[/] {e.Decision}");
            if (e.Error is not null)
                io.Out.MarkupLineInterpolated($"[red]{e.Error}[/]");
            foreach (var line in e.Log.TakeLast(20))
                io.Out.MarkupLineInterpolated($"[grey]{line.At.UtcDateTime.ToString("HH:mm:ss", CultureInfo.InvariantCulture)}[/] [blue]{line.Step,-11}[/] {line.Message}");
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Report(CliIo io, ConnectionOptions connection)
    {
        var id = new Argument<Guid>("id") { Description = "Experiment id." };
        var output = new Option<DirectoryInfo?>("--output", "-o") { Description = "Folder for <id>.html and <id>.json (default: the data folder's reports/, or ./reports with --url)." };
        var open = new Option<bool>("--open") { Description = "Open the HTML report in the browser (xdg-open / open)." };
        var command = new Command("report", "Download the decision report (HTML with charts, and JSON); with --json print the JSON.") { id, output, open };
        command.SetServiceAction(io, connection, async (c, parse, ct) =>
        {
            var (report, html) = await DownloadReportAsync(c, parse.GetValue(id), parse.GetValue(output)?.FullName, ct);
            if (parse.GetValue(connection.Json))
                io.WriteJson(report);
            else
            {
                io.Write(ReportTable(report));
                io.Out.MarkupLineInterpolated($"[green bold]Decision: {report.Winner}[/]");
                io.Out.WriteLine(report.Decision);
                io.Out.MarkupLineInterpolated($"Report: [link]{html}[/] (and {Path.ChangeExtension(html, ".json")})");
            }
            if (parse.GetValue(open))
                OpenInBrowser(io, html);
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>Writes the report as <c>ID.html</c> and <c>ID.json</c> into the folder (default: the data folder's reports/).</summary>
    internal static async Task<(ExperimentReport Report, string Html)> DownloadReportAsync(ServiceConnection c, Guid id, string? folder, CancellationToken ct)
    {
        folder ??= c.LocalFolder("reports");
        Directory.CreateDirectory(folder);
        var html = Path.Combine(folder, $"{id}.html");
        using (var response = await c.SendRawAsync(new HttpRequestMessage(HttpMethod.Get, $"{Experiments}/{id}/report"), ct))
            await File.WriteAllBytesAsync(html, await response.Content.ReadAsByteArrayAsync(ct), ct);
        using (var response = await c.SendRawAsync(new HttpRequestMessage(HttpMethod.Get, $"{Experiments}/{id}/report.json"), ct))
        {
            var bytes = await response.Content.ReadAsByteArrayAsync(ct);
            await File.WriteAllBytesAsync(Path.ChangeExtension(html, ".json"), bytes, ct);
            return (JsonSerializer.Deserialize<ExperimentReport>(bytes, ContractJson.Options) ?? throw new CliException($"The report of {id} is empty."), html);
        }
    }

    /// <summary>
    /// Every candidate: accuracy with its interval, macro-F1, invalid answers, p95 latency, cost per 1k requests, Pareto
    /// front. Generation: the primary metric with its interval, then token F1 and ROUGE-L (or exact match) in place of F1 and invalid.
    /// </summary>
    internal static Table ReportTable(ExperimentReport report)
    {
        static string N(double value, string format, double scale = 1) => double.IsFinite(value) ? (value * scale).ToString(format, CultureInfo.InvariantCulture) : "n/a";
        static string Short(string name) => name.Length <= 24 ? name : name[..12] + "~" + name[^11..];
        static string Metric(CandidateSummary c, string name) => c.Metrics.FirstOrDefault(m => m.Name == name) is { } m ? N(m.Value, "0.0", 100) : "";
        // Fits 80 columns: long candidate names (fine-tuned model ids) keep their start and end; * marks the Pareto front.
        if (report.Task == ExperimentTask.Generation)
        {
            string[] others = report.PrimaryMetric == "token_f1" ? ["rouge_l", "exact"] : ["token_f1", "rouge_l"];
            var generation = CliIo.Table("candidate", Head(report.PrimaryMetric) + " %", "95% CI", Head(others[0]) + " %", Head(others[1]) + " %", "p95 ms", "USD/1k")
                .Caption($"* on the Pareto front ({report.PrimaryMetric}, p95 latency, cost)");
            foreach (var c in report.Candidates)
                generation.AddRow(Markup.Escape(Short(c.Name) + (c.OnParetoFront ? " *" : "")), N(c.Accuracy, "0.0", 100), $"{N(c.AccuracyLower, "0.0", 100)}-{N(c.AccuracyUpper, "0.0", 100)}",
                    Metric(c, others[0]), Metric(c, others[1]), N(c.LatencyP95, "0", 1000), N(c.CostPer1k, "0.###"));
            return generation;
        }
        var table = CliIo.Table("candidate", "acc %", "95% CI", "F1", "invalid", "p95 ms", "USD/1k").Caption("* on the Pareto front (accuracy, p95 latency, cost)");
        foreach (var c in report.Candidates)
            table.AddRow(Markup.Escape(Short(c.Name) + (c.OnParetoFront ? " *" : "")), N(c.Accuracy, "0.0", 100), $"{N(c.AccuracyLower, "0.0", 100)}-{N(c.AccuracyUpper, "0.0", 100)}",
                N(c.MacroF1, "0.00"), c.Invalid.ToString(CultureInfo.InvariantCulture), N(c.LatencyP95, "0", 1000), N(c.CostPer1k, "0.###"));
        return table;
    }

    /// <summary>Short column heads for the 80-column table: json_fields is "fields", token_f1 "tok F1", rouge_l "R-L".</summary>
    private static string Head(string metric) => metric switch
    {
        "json_fields" => "fields",
        "token_f1" => "tok F1",
        "rouge_l" => "R-L",
        _ => metric,
    };

    private static Command Cancel(CliIo io, ConnectionOptions connection)
    {
        var id = new Argument<Guid>("id") { Description = "Experiment id." };
        var command = new Command("cancel", "Cancel a queued or running experiment.") { id };
        command.SetServiceAction(io, connection, async (c, parse, ct) =>
        {
            var e = await c.PostAsync<object?, ExperimentSummary>($"{Experiments}/{parse.GetValue(id)}/cancel", null, ct);
            if (parse.GetValue(connection.Json))
                io.WriteJson(e);
            else
                io.Out.MarkupLineInterpolated($"Experiment [bold]{e.Name}[/] ({e.Id}): {e.Status}");
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>Hands a file to the desktop's opener; on a machine without one says where the file is instead.</summary>
    internal static void OpenInBrowser(CliIo io, string path)
    {
        var opener = OperatingSystem.IsMacOS() ? "open" : OperatingSystem.IsWindows() ? "explorer" : "xdg-open";
        try
        {
            using var process = Process.Start(new ProcessStartInfo(opener, path) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true });
        }
        catch (System.ComponentModel.Win32Exception)
        {
            io.Err.MarkupLineInterpolated($"[yellow]No '{opener}' here to open {path}; open it yourself.[/]");
        }
    }
}

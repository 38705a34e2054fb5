using System.CommandLine;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using AspireTune.Cli.Infrastructure;
using AspireTune.Contracts.Evaluation;
using AspireTune.Evaluation.Apis;
using AspireTune.Evaluation.Data;
using Spectre.Console;

namespace AspireTune.Cli.Commands;

/// <summary><c>aspiretune evaluation</c>: runs of prompt versions x model endpoints x a dataset, and their results.</summary>
public static class EvaluationCommand
{
    internal const string Runs = "api/evaluation/runs";

    public static Command Create(CliIo io, ConnectionOptions connection) =>
        new("evaluation", "Evaluation runs: prompts x models x a dataset, scored, with 95% intervals.")
        {
            Run(io, connection), List(io, connection), Show(io, connection), Results(io, connection),
        };

    private static Command Run(CliIo io, ConnectionOptions connection)
    {
        var dataset = new Option<FileInfo>("--dataset") { Description = "JSONL: {\"input\", \"expected\"?, \"metadata\"?} per line.", Required = true };
        var prompts = new Option<string[]>("--prompt") { Description = "Prompt name, name@version or name:label (repeat for several).", Required = true, AllowMultipleArgumentsPerToken = true };
        var models = new Option<string[]>("--model") { Description = "Model endpoint id (repeat for several; aspiretune evaluation models are registered with the API).", Required = true, AllowMultipleArgumentsPerToken = true };
        var scorers = new Option<string[]>("--scorer") { Description = "exact, normalized, label, contains[:TEXT], regex:PATTERN, json, json-schema:SCHEMA, numeric[:TOL], judge:ENDPOINT, token-f1, rouge-l, json-fields, assert[...].", AllowMultipleArgumentsPerToken = true };
        var repeats = new Option<int>("--repeats") { Description = "Calls per item (consistency across repeats).", DefaultValueFactory = _ => 1 };
        var temperature = new Option<double?>("--temperature") { Description = "Sampling temperature (0-2)." };
        var maxTokens = new Option<int?>("--max-tokens") { Description = "Most output tokens per call." };
        var collection = new Option<string?>("--retrieval-collection") { Description = "Collection that fills {{$examples}} and {{$context}}." };
        var rubric = new Option<string?>("--rubric") { Description = "Rubric for the judge scorer." };
        var constrain = new Option<bool>("--constrain-to-labels") { Description = "Answers only with one of the dataset's labels (guided_choice; needs --scorer label and OpenAICompatible endpoints that take it)." };
        var noFollow = new Option<bool>("--no-follow") { Description = "Return once the run is queued (only with --url: the embedded host stops with the command)." };
        var command = new Command("run", "Start a run and follow it with a progress bar; prints the summaries.")
        {
            dataset, prompts, models, scorers, repeats, temperature, maxTokens, collection, rubric, constrain, noFollow,
        };
        command.SetServiceAction(io, connection, async (c, parse, ct) =>
        {
            var uploaded = await UploadDatasetAsync(c, parse.GetValue(dataset)!, ct);
            var run = await c.PostAsync<RunCreateRequest, RunResponse>(Runs, new RunCreateRequest
            {
                Prompts = parse.GetValue(prompts)!,
                ModelEndpoints = parse.GetValue(models)!,
                Dataset = uploaded.Sha256,
                Scorers = parse.GetValue(scorers) is { Length: > 0 } s ? s : null,
                Repeats = parse.GetValue(repeats),
                Temperature = parse.GetValue(temperature),
                MaxTokens = parse.GetValue(maxTokens),
                RetrievalCollection = parse.GetValue(collection),
                JudgeRubric = parse.GetValue(rubric),
                ConstrainToLabels = parse.GetValue(constrain),
            }, ct);
            if (parse.GetValue(noFollow) && c.Host is null)
            {
                WriteRun(io, run, parse.GetValue(connection.Json));
                return ExitCodes.Ok;
            }
            var final = (await FollowAsync(io, c, [(run.Id, $"run {run.Id}")], ct))[0];
            WriteRun(io, final, parse.GetValue(connection.Json));
            return final.Status == RunStatus.Completed ? ExitCodes.Ok : ExitCodes.Error;
        });
        return command;
    }

    private static Command List(CliIo io, ConnectionOptions connection)
    {
        var status = new Option<RunStatus?>("--status") { Description = "Only runs in this status (Queued, Running, Completed, Failed, Cancelled)." };
        var command = new Command("list", "List runs, newest first (at most 200).") { status };
        command.SetServiceAction(io, connection, async (c, parse, ct) =>
        {
            var runs = await c.GetAsync<List<RunResponse>>(Runs + (parse.GetValue(status) is { } s ? $"?status={s}" : ""), ct);
            if (parse.GetValue(connection.Json))
            {
                io.WriteJson(runs);
                return ExitCodes.Ok;
            }
            var table = CliIo.Table("id", "status", "calls", "prompts", "models", "created (UTC)", "error");
            foreach (var r in runs)
                table.AddRow(r.Id.ToString(), r.Status.ToString(), $"{r.CompletedCalls}/{r.TotalCalls}", Markup.Escape(string.Join(", ", r.Spec?.Prompts ?? [])),
                    Markup.Escape(string.Join(", ", r.Spec?.ModelEndpoints ?? [])), Time(r.CreatedAt), Markup.Escape(r.Error ?? ""));
            io.Write(table);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Show(CliIo io, ConnectionOptions connection)
    {
        var id = new Argument<Guid>("id") { Description = "Run id." };
        var command = new Command("show", "Show a run: its specification, progress and per prompt x model summaries.") { id };
        command.SetServiceAction(io, connection, async (c, parse, ct) =>
        {
            WriteRun(io, await c.GetAsync<RunResponse>($"{Runs}/{parse.GetValue(id)}", ct), parse.GetValue(connection.Json));
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Results(CliIo io, ConnectionOptions connection)
    {
        var id = new Argument<Guid>("id") { Description = "Run id." };
        var failed = new Option<bool>("--failed") { Description = "Only calls that erred or scored below 1." };
        var command = new Command("results", "The per-item results (with --json: one JSON object a line, JSONL).") { id, failed };
        command.SetServiceAction(io, connection, async (c, parse, ct) =>
        {
            var results = await ResultsAsync(c, parse.GetValue(id), ct);
            if (parse.GetValue(failed))
                results = results.Where(r => r.Error is not null || r.Scores is null || r.Scores.Values.Any(v => v < 1)).ToList();
            if (parse.GetValue(connection.Json))
            {
                foreach (var r in results)
                    io.WriteJsonLine(r);
                return ExitCodes.Ok;
            }
            var table = CliIo.Table("prompt", "model", "line", "repeat", "output", "scores", "latency s", "error");
            foreach (var r in results)
                table.AddRow(Markup.Escape(r.Prompt), Markup.Escape(r.ModelEndpoint), r.Line.ToString(CultureInfo.InvariantCulture), r.Repeat.ToString(CultureInfo.InvariantCulture),
                    Markup.Escape(Shorten(r.Output ?? "", 120)), Markup.Escape(string.Join(" ", (r.Scores ?? new Dictionary<string, double>()).Select(s => string.Create(CultureInfo.InvariantCulture, $"{s.Key}={s.Value:0.###}")))),
                    r.LatencyS.ToString("0.000", CultureInfo.InvariantCulture), Markup.Escape(r.Error ?? r.ScoreErrors ?? ""));
            io.Write(table);
            return ExitCodes.Ok;
        });
        return command;
    }

    internal static async Task<DatasetResponse> UploadDatasetAsync(ServiceConnection c, FileInfo file, CancellationToken ct)
    {
        if (!file.Exists)
            throw new CliException($"No dataset at {file.FullName}.", ExitCodes.Usage);
        return await UploadDatasetAsync(c, Path.GetFileNameWithoutExtension(file.Name), await File.ReadAllBytesAsync(file.FullName, ct), ct);
    }

    internal static async Task<DatasetResponse> UploadDatasetAsync(ServiceConnection c, string name, byte[] jsonl, CancellationToken ct)
    {
        var safe = string.Concat(name.Select(ch => char.IsAsciiLetterOrDigit(ch) || ch is '.' or '_' or '-' ? ch : '-')).Trim('-', '.', '_');
        var content = new ByteArrayContent(jsonl);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/jsonl");
        return await c.PostContentAsync<DatasetResponse>($"api/evaluation/datasets?name={Uri.EscapeDataString(safe.Length == 0 ? "dataset" : safe)}", content, ct);
    }

    /// <summary>Follows runs with one progress bar each until every one is over.</summary>
    internal static Task<IReadOnlyList<RunResponse>> FollowAsync(CliIo io, ServiceConnection c, IReadOnlyList<(Guid Id, string Name)> runs, CancellationToken ct) =>
        ProgressView.FollowAsync(io, runs.Select(r => r.Name).ToList(), (i, token) => c.GetAsync<RunResponse>($"{Runs}/{runs[i].Id}", token),
            r => new ProgressState(r.CompletedCalls, r.TotalCalls, $"{r.Status.ToString().ToLowerInvariant()} {r.CompletedCalls}/{r.TotalCalls}",
                r.Status is RunStatus.Completed or RunStatus.Failed or RunStatus.Cancelled),
            TimeSpan.FromMilliseconds(500), TimeSpan.FromHours(12), ct);

    internal static async Task<List<EvaluationItemResult>> ResultsAsync(ServiceConnection c, Guid id, CancellationToken ct)
    {
        using var response = await c.SendRawAsync(new HttpRequestMessage(HttpMethod.Get, $"{Runs}/{id}/results"), ct);
        var results = new List<EvaluationItemResult>();
        var number = 0;
        foreach (var line in (await response.Content.ReadAsStringAsync(ct)).Split('\n'))
        {
            number++;
            if (line.Trim().Length == 0)
                continue;
            try
            {
                results.Add(JsonSerializer.Deserialize<EvaluationItemResult>(line, CliIo.Json)!);
            }
            catch (JsonException e)
            {
                throw new CliException($"Results of run {id}, line {number}: {e.Message}");
            }
        }
        return results;
    }

    internal static void WriteRun(CliIo io, RunResponse run, bool json)
    {
        if (json)
        {
            io.WriteJson(run);
            return;
        }
        io.Out.MarkupLineInterpolated($"Run [bold]{run.Id}[/]: {run.Status.ToString().ToLowerInvariant()}, {run.CompletedCalls}/{run.TotalCalls} calls{(run.Error is { } e ? " - " + e : "")}");
        if (run.Summaries is { Count: > 0 } summaries)
            io.Write(SummaryTable(summaries));
    }

    /// <summary>Per prompt x model: every score with its 95% interval, then latency, cost and errors.</summary>
    internal static Table SummaryTable(IReadOnlyList<EvaluationSummary> summaries)
    {
        string[] calls = ["latency_p95_s", "cost_per_1k_requests_usd", "error_rate"];
        var scores = summaries.SelectMany(s => s.Metrics).Select(m => m.Name)
            .Where(n => !n.StartsWith("latency", StringComparison.Ordinal) && !n.Contains("tokens", StringComparison.Ordinal) && !n.StartsWith("cost", StringComparison.Ordinal)
                && n is not ("error_rate" or "cached_calls"))
            .Distinct().ToList();
        var table = CliIo.Table(["prompt", "model", "items", .. scores, "p95 s", "USD / 1k", "errors"]);
        foreach (var s in summaries)
        {
            string Cell(string name, string format, bool interval)
            {
                var m = s.Metrics.FirstOrDefault(x => x.Name == name);
                if (m is null)
                    return "";
                var value = m.Value.ToString(format, CultureInfo.InvariantCulture);
                return Markup.Escape(interval && m.Lower is { } lo && m.Upper is { } hi ? $"{value} [{lo.ToString(format, CultureInfo.InvariantCulture)}-{hi.ToString(format, CultureInfo.InvariantCulture)}]" : value);
            }
            table.AddRow([Markup.Escape(s.Prompt), Markup.Escape(s.ModelEndpoint), s.Items.ToString(CultureInfo.InvariantCulture),
                .. scores.Select(n => Cell(n, "0.000", true)), Cell(calls[0], "0.000", false), Cell(calls[1], "0.####", false), s.Errors.ToString(CultureInfo.InvariantCulture)]);
        }
        return table;
    }

    internal static string Shorten(string text, int length)
    {
        var flat = text.ReplaceLineEndings(" ");
        return flat.Length <= length ? flat : flat[..length] + "...";
    }

    internal static string Time(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture);
}

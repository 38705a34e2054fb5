using System.CommandLine;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using AspireTune.Cli.Infrastructure;
using AspireTune.FineTuning.Apis;
using AspireTune.FineTuning.Data;
using Spectre.Console;

namespace AspireTune.Cli.Commands;

/// <summary>
/// <c>aspiretune fine-tuning</c>: upload files, create, list, show, follow and cancel jobs, read their events.
/// In the embedded host a job trains only while the command runs, so <c>jobs create</c> follows it there.
/// </summary>
public static class FineTuningCommand
{
    private const string Files = "api/fine-tuning/files";
    private const string Jobs = "api/fine-tuning/jobs";

    public static Command Create(CliIo io, ConnectionOptions connection)
    {
        var file = new Argument<FileInfo>("file") { Description = "JSONL training, validation or test file." };
        var upload = new Command("upload", "Upload a JSONL file; prints its id (file-...) and SHA-256.") { file };
        upload.SetServiceAction(io, connection, async (c, parse, ct) =>
        {
            var uploaded = await UploadAsync(c, parse.GetValue(file)!, ct);
            if (parse.GetValue(connection.Json))
                io.WriteJson(uploaded);
            else
                io.Out.MarkupLineInterpolated($"Uploaded [bold]{uploaded.Id}[/] ({uploaded.Examples} examples, {uploaded.Bytes} bytes, sha256 {uploaded.Sha256})");
            return ExitCodes.Ok;
        });

        var jobs = new Command("jobs", "Fine-tuning jobs (statuses validating_files, queued, running, succeeded, failed, cancelled).")
        {
            CreateJob(io, connection), ListJobs(io, connection), ShowJob(io, connection), Events(io, connection), Follow(io, connection), Cancel(io, connection),
        };
        return new Command("fine-tuning", "Train smaller models: files and jobs.") { new Command("files", "Training files.") { upload }, jobs };
    }

    internal static async Task<FileResponse> UploadAsync(ServiceConnection c, FileInfo file, CancellationToken ct)
    {
        if (!file.Exists)
            throw new CliException($"No file at {file.FullName}.", ExitCodes.Usage);
        using var form = new MultipartFormDataContent();
        var content = new StreamContent(file.OpenRead());
        content.Headers.ContentType = new MediaTypeHeaderValue("application/jsonl");
        form.Add(content, "file", file.Name);
        return await c.PostContentAsync<FileResponse>(Files, form, ct);
    }

    private static Command CreateJob(CliIo io, ConnectionOptions connection)
    {
        var model = new Option<string>("--model") { Description = "Base model id in the registry (aspiretune models list).", Required = true };
        var training = new Option<string>("--training-file") { Description = "A file id (file-...) or a local JSONL file to upload.", Required = true };
        var validation = new Option<string?>("--validation-file") { Description = "A file id or a local JSONL file." };
        var test = new Option<string?>("--test-file") { Description = "Held-out test file (for the leakage check): an id or a local file." };
        var suffix = new Option<string?>("--suffix") { Description = "Added to the fine-tuned model's name." };
        var hyper = new Option<string[]>("--hyperparameter", "-p") { Description = "NAME=VALUE (numbers, text or auto); repeat for several. See docs/finetuning.md.", AllowMultipleArgumentsPerToken = false };
        var follow = new Option<bool?>("--follow") { Description = "Follow the job until it ends (default: yes in the embedded host, no with --url)." };
        var command = new Command("create", "Create a fine-tuning job.") { model, training, validation, test, suffix, hyper, follow };
        command.SetServiceAction(io, connection, async (c, parse, ct) =>
        {
            var hyperparameters = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
            foreach (var pair in parse.GetValue(hyper) ?? [])
            {
                var eq = pair.IndexOf('=');
                if (eq <= 0)
                    throw new CliException($"--hyperparameter '{pair}' is not NAME=VALUE.", ExitCodes.Usage);
                var value = pair[(eq + 1)..].Trim();
                hyperparameters[pair[..eq].Trim()] = double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var number)
                    ? JsonSerializer.SerializeToElement(number) : JsonSerializer.SerializeToElement(value);
            }
            var request = new CreateJobRequest
            {
                Model = parse.GetValue(model),
                TrainingFile = await FileIdAsync(c, parse.GetValue(training), ct),
                ValidationFile = await FileIdAsync(c, parse.GetValue(validation), ct),
                TestFile = await FileIdAsync(c, parse.GetValue(test), ct),
                Suffix = parse.GetValue(suffix),
                Hyperparameters = hyperparameters.Count == 0 ? null : hyperparameters,
            };
            var job = await c.PostAsync<CreateJobRequest, JobResponse>(Jobs, request, ct);
            if (!(parse.GetValue(follow) ?? c.Host is not null))
            {
                WriteJob(io, job, parse.GetValue(connection.Json));
                return ExitCodes.Ok;
            }
            io.Err.MarkupLineInterpolated($"Job [bold]{job.Id}[/] created; following it (Ctrl+C stops following{(c.Host is null ? "" : " and, in the embedded host, the training")}).");
            return await FollowAsync(io, c, job.Id, parse.GetValue(connection.Json), ct);
        });
        return command;
    }

    /// <summary>An id as given, or the id of the local file after uploading it.</summary>
    private static async Task<string?> FileIdAsync(ServiceConnection c, string? value, CancellationToken ct)
    {
        if (value is null || value.StartsWith("file-", StringComparison.Ordinal) || !File.Exists(value))
            return value;
        return (await UploadAsync(c, new FileInfo(value), ct)).Id;
    }

    private static Command ListJobs(CliIo io, ConnectionOptions connection)
    {
        var status = new Option<string?>("--status") { Description = "Only jobs in this status." };
        var limit = new Option<int>("--limit") { Description = "At most this many (1-100).", DefaultValueFactory = _ => 20 };
        var command = new Command("list", "List jobs, newest first.") { status, limit };
        command.SetServiceAction(io, connection, async (c, parse, ct) =>
        {
            var query = $"{Jobs}?limit={parse.GetValue(limit)}" + (parse.GetValue(status) is { } s ? $"&status={Uri.EscapeDataString(s)}" : "");
            var page = await c.GetAsync<ListResponse<JobResponse>>(query, ct);
            if (parse.GetValue(connection.Json))
            {
                io.WriteJson(page);
                return ExitCodes.Ok;
            }
            var table = CliIo.Table("id", "model", "status", "step", "fine-tuned model", "created (UTC)");
            foreach (var j in page.Data)
                table.AddRow(Markup.Escape(j.Id), Markup.Escape(j.Model), Markup.Escape(j.Status), $"{j.Step}/{j.TotalSteps}", Markup.Escape(j.FineTunedModel ?? ""), Time(j.CreatedAt));
            io.Write(table);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command ShowJob(CliIo io, ConnectionOptions connection)
    {
        var id = new Argument<string>("id") { Description = "Job id (ftjob-...)." };
        var command = new Command("show", "Show a job: status, progress, hyperparameters, best metrics, fit verdict.") { id };
        command.SetServiceAction(io, connection, async (c, parse, ct) =>
        {
            WriteJob(io, await c.GetAsync<JobResponse>($"{Jobs}/{Uri.EscapeDataString(parse.GetValue(id)!)}", ct), parse.GetValue(connection.Json));
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Events(CliIo io, ConnectionOptions connection)
    {
        var id = new Argument<string>("id") { Description = "Job id (ftjob-...)." };
        var limit = new Option<int>("--limit") { Description = "At most this many events (1-1000), oldest first.", DefaultValueFactory = _ => 100 };
        var command = new Command("events", "A job's events, oldest first.") { id, limit };
        command.SetServiceAction(io, connection, async (c, parse, ct) =>
        {
            var page = await c.GetAsync<ListResponse<JobEventResponse>>($"{Jobs}/{Uri.EscapeDataString(parse.GetValue(id)!)}/events?limit={parse.GetValue(limit)}", ct);
            if (parse.GetValue(connection.Json))
            {
                io.WriteJson(page);
                return ExitCodes.Ok;
            }
            var table = CliIo.Table("time (UTC)", "level", "type", "message");
            foreach (var e in page.Data)
                table.AddRow(Time(e.CreatedAt), Markup.Escape(e.Level), Markup.Escape(e.Type), Markup.Escape(e.Message));
            io.Write(table);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Follow(CliIo io, ConnectionOptions connection)
    {
        var id = new Argument<string>("id") { Description = "Job id (ftjob-...)." };
        var command = new Command("follow", "Follow a job with a live progress bar until it ends; exit 0 when it succeeded.") { id };
        command.SetServiceAction(io, connection, (c, parse, ct) => FollowAsync(io, c, parse.GetValue(id)!, parse.GetValue(connection.Json), ct));
        return command;
    }

    private static Command Cancel(CliIo io, ConnectionOptions connection)
    {
        var id = new Argument<string>("id") { Description = "Job id (ftjob-...)." };
        var command = new Command("cancel", "Cancel a job that has not ended.") { id };
        command.SetServiceAction(io, connection, async (c, parse, ct) =>
        {
            var job = await c.PostAsync<object?, JobResponse>($"{Jobs}/{Uri.EscapeDataString(parse.GetValue(id)!)}/cancel", null, ct);
            WriteJob(io, job, parse.GetValue(connection.Json));
            return ExitCodes.Ok;
        });
        return command;
    }

    internal static async Task<int> FollowAsync(CliIo io, ServiceConnection c, string id, bool json, CancellationToken ct)
    {
        var path = $"{Jobs}/{Uri.EscapeDataString(id)}";
        var final = (await ProgressView.FollowAsync(io, [id], async (_, token) =>
        {
            var job = await c.GetAsync<JobResponse>(path, token);
            var metrics = job.Step > 0 ? await c.GetAsync<ListResponse<MetricRow>>($"{path}/metrics", token) : null;
            return (Job: job, Last: metrics?.Data.Count > 0 ? metrics.Data[^1] : null);
        }, s => new ProgressState(s.Job.Step, s.Job.TotalSteps, Status(s.Job, s.Last), JobStatus.IsFinal(s.Job.Status)),
            TimeSpan.FromSeconds(1), TimeSpan.FromHours(24), ct))[0].Job;
        WriteJob(io, final, json);
        return final.Status == JobStatus.Succeeded ? ExitCodes.Ok : ExitCodes.Error;
    }

    private static string Status(JobResponse job, MetricRow? last) =>
        last is null ? job.Status : string.Create(CultureInfo.InvariantCulture,
            $"{job.Status} step {job.Step}/{job.TotalSteps} loss {last.TrainLoss:0.000}{(last.ValidLoss is { } v ? $" valid {v:0.000}" : "")} {last.TokensPerSecond:0} tok/s");

    private static void WriteJob(CliIo io, JobResponse job, bool json)
    {
        if (json)
        {
            io.WriteJson(job);
            return;
        }
        var grid = new Grid().AddColumn().AddColumn();
        void Row(string name, string? value) => grid.AddRow(new Text(name, new Style(decoration: Decoration.Bold)), new Text(value ?? ""));
        Row("id", job.Id);
        Row("status", job.Status);
        Row("base model", job.Model);
        Row("fine-tuned model", job.FineTunedModel);
        Row("progress", $"step {job.Step}/{job.TotalSteps}");
        Row("training file", job.TrainingFile);
        Row("validation file", job.ValidationFile);
        Row("hyperparameters", job.Hyperparameters.GetRawText());
        if (job.BestMetrics is { Count: > 0 } best)
            Row("best metrics", string.Join(", ", best.Select(m => string.Create(CultureInfo.InvariantCulture, $"{m.Name} {m.Value:0.####}"))));
        Row("fit", job.FitVerdict is null ? null : $"{job.FitVerdict}: {job.FitAdvice}");
        if (job.Error is { } error)
            Row("error", $"{error.Code}: {error.Message}");
        io.Write(grid);
    }

    internal static string Time(long unixSeconds) => DateTimeOffset.FromUnixTimeSeconds(unixSeconds).ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture);
}

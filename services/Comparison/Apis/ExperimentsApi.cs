using System.Text;
using System.Text.Json;
using AspireTune.Comparison.Curation;
using AspireTune.Comparison.Data;
using AspireTune.Comparison.Workflow;
using AspireTune.Contracts.Common;
using AspireTune.Contracts.Comparison;
using AspireTune.ServiceDefaults;
using AspireTune.ServiceDefaults.Artifacts;
using AspireTune.ServiceDefaults.Data;
using AspireTune.ServiceDefaults.Messaging;
using AspireTune.ServiceDefaults.Security;
using MassTransit;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace AspireTune.Comparison.Apis;

public sealed record ExperimentSummary(Guid Id, string Name, string Status, string Step, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt, string? Winner);

public sealed record Page<T>(IReadOnlyList<T> Items, int PageNumber, int PageSize, int Total);

public static class ExperimentsApi
{

    public static RouteGroupBuilder MapExperimentsApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/experiments").WithTags("Comparison: experiments");
        // Inline JSONL grows when escaped as a JSON string: room for twice Comparison:MaxDatasetBytes, checked again after reading.
        var datasetLimit = app.ServiceProvider.GetRequiredService<IOptions<ComparisonOptions>>().Value.MaxDatasetBytes;
        group.MapPost("/", CreateAsync).RequireAuthorization(Policies.Operator).WithMetadata(new RequestBodyLimit(2 * Math.Min(datasetLimit, long.MaxValue / 4) + 1024 * 1024));
        group.MapGet("/", ListAsync).RequireAuthorization(Policies.Reader);
        group.MapGet("/{id:guid}", GetAsync).RequireAuthorization(Policies.Reader);
        group.MapGet("/{id:guid}/report", ReportHtmlAsync).RequireAuthorization(Policies.Reader);
        group.MapGet("/{id:guid}/report.json", ReportJsonAsync).RequireAuthorization(Policies.Reader);
        group.MapGet("/latest/report", LatestReportAsync).RequireAuthorization(Policies.Reader);
        group.MapPost("/{id:guid}/cancel", CancelAsync).RequireAuthorization(Policies.Operator);
        return group;
    }

    public static async Task<Results<Accepted<ExperimentAccepted>, ValidationProblem>> CreateAsync(
        CreateExperimentRequest request, ComparisonDbContext db, IArtifactStore artifacts, DataRoot data,
        IOptions<ComparisonOptions> options, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        var name = request.Name?.Trim() ?? "";
        if (name.Length is 0 or > 200)
            errors["name"] = ["The name must be 1-200 characters."];
        var task = ExperimentTask.Classification;
        if (request.Task is not null && !ExperimentTasks.TryParse(request.Task, out task))
            errors["task"] = [$"The task must be one of {string.Join(", ", ExperimentTasks.All)}; '{request.Task}' is not."];
        var generation = task == ExperimentTask.Generation;
        var candidates = new List<CandidateKind>();
        foreach (var c in request.Candidates ?? CandidateKinds.All)
            if (CandidateKinds.TryParse(c, out var kind))
                candidates.Add(kind);
            else
                errors["candidates"] = [$"Candidates must be among {string.Join(", ", CandidateKinds.All)}; '{c}' is not."];
        if (candidates.Count == 0)
            errors["candidates"] = [$"Candidates must be among {string.Join(", ", CandidateKinds.All)}."];
        // Prompt templates hold the instruction as text: template blocks ({{ }}) in it would be run, not read.
        if (request.Instruction is { } instruction && (string.IsNullOrWhiteSpace(instruction) || instruction.Length > 2000 || instruction.Contains("{{", StringComparison.Ordinal) || instruction.Contains("}}", StringComparison.Ordinal)))
            errors["instruction"] = ["The instruction is 1-2,000 characters of text without '{{' or '}}'."];
        else if (request.Instruction is not null && !generation)
            errors["instruction"] = ["An instruction is for generation tasks (task: generation); classification prompts are written from the labels."];
        if (request.JudgeEndpoint is { } judge && (string.IsNullOrWhiteSpace(judge) || judge.Length > 128))
            errors["judgeEndpoint"] = ["The judge endpoint id is a non-empty string of at most 128 characters."];
        else if (request.JudgeEndpoint is not null && !generation)
            errors["judgeEndpoint"] = ["A judge scores generation tasks (task: generation); classification is scored by label."];
        if (request.ModelEndpoints?.Any(e => string.IsNullOrWhiteSpace(e) || e.Length > 128) == true)
            errors["modelEndpoints"] = ["Model endpoint ids are non-empty strings of at most 128 characters."];
        var testFraction = request.TestFraction ?? 0.2;
        if (testFraction is <= 0 or > 0.5)
            errors["testFraction"] = ["The test fraction must be in (0, 0.5]."];
        if (request.NonInferiorityMargin is < 0 or > 0.5 || request.NonInferiorityMargin is double m && !double.IsFinite(m))
            errors["nonInferiorityMargin"] = ["The non-inferiority margin is a fraction of accuracy in [0, 0.5] (0.02 = 2 points)."];

        string? jsonl = null;
        if ((request.Dataset is null) == (request.DatasetPath is null))
            errors["dataset"] = ["Give the dataset either inline ('dataset', JSONL text) or as 'datasetPath' inside the data folder, not both."];
        else if (request.Dataset is not null)
            jsonl = request.Dataset;
        else
        {
            try
            {
                var path = data.Resolve(request.DatasetPath!);
                if (!File.Exists(path))
                    errors["datasetPath"] = [$"No file at '{request.DatasetPath}' in the data folder."];
                else if (new FileInfo(path).Length > options.Value.MaxDatasetBytes)
                    errors["datasetPath"] = [$"The file is larger than the {options.Value.MaxDatasetBytes} bytes allowed (Comparison:MaxDatasetBytes)."];
                else
                    jsonl = await File.ReadAllTextAsync(path, ct);
            }
            catch (PathOutsideDataRootException ex)
            {
                errors["datasetPath"] = [ex.Message];
            }
        }
        if (jsonl is not null)
        {
            if (Encoding.UTF8.GetByteCount(jsonl) > options.Value.MaxDatasetBytes)
                errors["dataset"] = [$"The dataset is larger than the {options.Value.MaxDatasetBytes} bytes allowed (Comparison:MaxDatasetBytes)."];
            else
            {
                var (examples, lineErrors, errorCount) = DatasetReader.Parse(jsonl, task);
                if (errorCount > 0)
                    errors["dataset"] = [.. lineErrors.Select(e => e.ToString()), .. errorCount > lineErrors.Count ? [$"... and {errorCount - lineErrors.Count} more"] : Array.Empty<string>()];
                else if (examples.Count == 0)
                    errors["dataset"] = ["The dataset has no examples."];
                else if (!generation && examples.Select(e => e.Expected).Distinct().Count() < 2)
                    errors["dataset"] = ["The dataset needs at least two distinct 'expected' labels to compare classifiers."];
            }
        }
        if (errors.Count > 0)
            return TypedResults.ValidationProblem(errors, title: "The experiment cannot start.");

        var id = NewId.NextGuid();
        var artifact = await artifacts.PutAsync(new MemoryStream(Encoding.UTF8.GetBytes(jsonl!)), $"experiments/{id:N}", "dataset.jsonl", "application/jsonl", ct);
        var command = new StartExperiment
        {
            ExperimentId = id,
            Name = name,
            Dataset = artifact,
            Candidates = candidates.Distinct().Select(k => k.ToWireName()).ToList(),
            ModelEndpoints = request.ModelEndpoints ?? [],
            BaseModel = request.BaseModel,
            TestFraction = testFraction,
            Seed = request.Seed ?? 42,
            NonInferiorityMargin = request.NonInferiorityMargin,
            Task = task,
            Instruction = request.Instruction?.Trim(),
            JudgeEndpoint = request.JudgeEndpoint,
        };
        var now = DateTimeOffset.UtcNow;
        // The experiment and its command commit together (outbox): the command leaves once, even if the process dies now.
        db.Experiments.Add(new Experiment { Id = id, Name = name, Status = ExperimentStatus.Queued, CreatedAt = now, UpdatedAt = now, Request = command, DatasetSha256 = artifact.Sha256 });
        db.SendOnCommit(StartQueue, command);
        await db.SaveChangesAsync(ct);
        ComparisonTelemetry.ExperimentsStarted.Add(1);
        var location = $"/api/experiments/{id}";
        return TypedResults.Accepted(location, new ExperimentAccepted { Id = id, Name = name, Status = "queued", Location = location });
    }

    internal static readonly Uri StartQueue = new("queue:start-experiment");

    public static async Task<Ok<Page<ExperimentSummary>>> ListAsync(ComparisonDbContext db, int? page, int? pageSize, CancellationToken ct)
    {
        var size = Math.Clamp(pageSize ?? 20, 1, 200);
        var number = Math.Max(page ?? 1, 1);
        var total = await db.Experiments.CountAsync(ct);
        var items = await db.Experiments.AsNoTracking().OrderByDescending(e => e.CreatedAt).Skip((number - 1) * size).Take(size)
            .Select(e => new ExperimentSummary(e.Id, e.Name, e.Status.ToString().ToLowerInvariant(), e.Step, e.CreatedAt, e.UpdatedAt, e.Winner))
            .ToListAsync(ct);
        return TypedResults.Ok(new Page<ExperimentSummary>(items, number, size, total));
    }

    public static async Task<Results<Ok<ExperimentView>, NotFound>> GetAsync(Guid id, ComparisonDbContext db, CancellationToken ct)
    {
        var e = await db.Experiments.AsNoTracking().Include(x => x.Candidates).Include(x => x.Log).AsSplitQuery().FirstOrDefaultAsync(x => x.Id == id, ct);
        if (e is null)
            return TypedResults.NotFound();
        return TypedResults.Ok(new ExperimentView
        {
            Id = e.Id,
            Name = e.Name,
            Status = e.Status.ToString().ToLowerInvariant(),
            Step = e.Step,
            CreatedAt = e.CreatedAt,
            UpdatedAt = e.UpdatedAt,
            CompletedAt = e.CompletedAt,
            DatasetSha256 = e.DatasetSha256,
            Task = e.Request.Task,
            Curation = e.Curation,
            Candidates = e.Candidates.OrderBy(c => c.Name).Select(c => new CandidateView
            {
                Name = c.Name,
                Kind = c.Kind,
                Status = c.Status.ToString().ToLowerInvariant(),
                ModelEndpoint = c.ModelEndpoint,
                Prompts = c.Prompts,
                Error = c.Error,
            }).ToList(),
            Winner = e.Winner,
            Decision = e.Decision,
            Error = e.Error,
            ReportUrl = e.ReportHtmlArtifact is null ? null : $"/api/experiments/{e.Id}/report",
            Log = e.Log.OrderBy(l => l.Id).Select(l => new LogView { At = l.At, Step = l.Step, Message = l.Message }).ToList(),
        });
    }

    /// <summary>The task the stored command names; classification for a command from before tasks (or none readable).</summary>
    public static Task<Results<FileStreamHttpResult, NotFound>> ReportHtmlAsync(Guid id, ComparisonDbContext db, IArtifactStore artifacts, CancellationToken ct) =>
        ReportAsync(id, db, artifacts, e => e.ReportHtmlArtifact, "text/html; charset=utf-8", ct);

    public static Task<Results<FileStreamHttpResult, NotFound>> ReportJsonAsync(Guid id, ComparisonDbContext db, IArtifactStore artifacts, CancellationToken ct) =>
        ReportAsync(id, db, artifacts, e => e.ReportJsonArtifact, "application/json", ct);

    /// <summary>The HTML report of the experiment that finished last (the dashboard links here), or 404 while none has.</summary>
    public static async Task<Results<FileStreamHttpResult, NotFound>> LatestReportAsync(ComparisonDbContext db, IArtifactStore artifacts, CancellationToken ct)
    {
        var latest = await db.Experiments.AsNoTracking().Where(e => e.ReportHtmlArtifact != null && e.CompletedAt != null)
            .OrderByDescending(e => e.CompletedAt).Select(e => (Guid?)e.Id).FirstOrDefaultAsync(ct);
        return latest is { } id ? await ReportHtmlAsync(id, db, artifacts, ct) : TypedResults.NotFound();
    }

    private static async Task<Results<FileStreamHttpResult, NotFound>> ReportAsync(Guid id, ComparisonDbContext db, IArtifactStore artifacts, Func<Experiment, ArtifactRef?> pick, string contentType, CancellationToken ct)
    {
        var e = await db.Experiments.AsNoTracking().FirstOrDefaultAsync(x => x.Id == id, ct);
        if (e is null || pick(e) is not { } report)
            return TypedResults.NotFound();
        return TypedResults.Stream(artifacts.OpenRead(report), contentType);
    }

    public static async Task<Results<Ok<ExperimentSummary>, NotFound, ProblemHttpResult>> CancelAsync(Guid id, ComparisonDbContext db, WorkCanceller canceller, CancellationToken ct)
    {
        var e = await db.Experiments.Include(x => x.Candidates).FirstOrDefaultAsync(x => x.Id == id, ct);
        if (e is null)
            return TypedResults.NotFound();
        if (e.Status is not (ExperimentStatus.Queued or ExperimentStatus.Running))
            return TypedResults.Problem($"Experiment {id} is {e.Status.ToString().ToLowerInvariant()}; only queued or running experiments can be cancelled.",
                statusCode: StatusCodes.Status409Conflict, title: "The experiment has already finished.");
        e.Status = ExperimentStatus.Cancelled;
        e.CompletedAt = DateTimeOffset.UtcNow;
        e.Touch(DateTimeOffset.UtcNow);
        await db.SaveChangesAsync(ct);
        // Saved first, so the workflow starts nothing new; then what it started is stopped in its own service.
        var (runs, job, problems) = await canceller.CancelStartedWorkAsync(e, ct);
        db.Add(new ExperimentLogEntry
        {
            ExperimentId = e.Id, At = DateTimeOffset.UtcNow, Step = e.Step,
            Message = $"Cancelled: {runs} evaluation run(s){(job ? " and the fine-tuning job" : "")} asked to stop.{(problems.Count > 0 ? " Could not cancel: " + string.Join("; ", problems) : "")}",
        });
        await db.SaveChangesAsync(ct);
        return TypedResults.Ok(new ExperimentSummary(e.Id, e.Name, "cancelled", e.Step, e.CreatedAt, e.UpdatedAt, e.Winner));
    }
}

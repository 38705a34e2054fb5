using AspireTune.ServiceDefaults.Data;
using System.Security.Claims;
using System.Text.Json;
using AspireTune.Contracts.Common;
using AspireTune.Contracts.Evaluation;
using AspireTune.Evaluation.Data;
using AspireTune.Evaluation.Datasets;
using AspireTune.Evaluation.Runs;
using AspireTune.ServiceDefaults.Artifacts;
using AspireTune.ServiceDefaults.Security;
using AspireTune.ServiceDefaults.Work;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.Evaluation.Apis;

/// <summary>
/// A run: prompt versions x model endpoints x a dataset (<c>dataset</c>: the SHA-256 of an uploaded dataset, or
/// <c>datasetArtifact</c>: any artifact reference).
/// </summary>
public sealed record RunCreateRequest
{
    public Guid? RunId { get; init; }
    public Guid? ExperimentId { get; init; }
    public IReadOnlyList<string> Prompts { get; init; } = [];
    public IReadOnlyList<string> ModelEndpoints { get; init; } = [];
    public string? Dataset { get; init; }
    public ArtifactRef? DatasetArtifact { get; init; }
    public IReadOnlyList<string>? Scorers { get; init; }
    public int Repeats { get; init; } = 1;
    public string? RetrievalCollection { get; init; }
    public int RetrievalTopK { get; init; } = 4;
    public double? Temperature { get; init; }
    public int? MaxTokens { get; init; }
    public string? JudgeRubric { get; init; }

    /// <summary>Answers constrained to the dataset's labels (<c>RunEvaluation.ConstrainToLabels</c>); default false.</summary>
    public bool ConstrainToLabels { get; init; }

    /// <summary>The task's label set (<c>RunEvaluation.Labels</c>); default the labels the dataset expects.</summary>
    public IReadOnlyList<string>? Labels { get; init; }
}

public sealed record RunResponse(Guid Id, Guid? ExperimentId, RunStatus Status, int TotalCalls, int CompletedCalls, string? Error, RunSpec? Spec,
    IReadOnlyList<EvaluationSummary>? Summaries, ArtifactRef? Results, DateTimeOffset CreatedAt, DateTimeOffset? StartedAt, DateTimeOffset? FinishedAt);

public static class RunsApi
{
    public static RouteGroupBuilder MapRunsApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/evaluation/runs").WithTags("Evaluation: runs");
        group.MapGet("/", ListAsync).RequireAuthorization(Policies.Reader);
        group.MapPost("/", CreateAsync).RequireAuthorization(Policies.Operator);
        group.MapGet("/{id:guid}", GetAsync).RequireAuthorization(Policies.Reader);
        group.MapGet("/{id:guid}/results", ResultsAsync).RequireAuthorization(Policies.Reader);
        group.MapPost("/{id:guid}/cancel", CancelAsync).RequireAuthorization(Policies.Operator);
        return group;
    }

    public static async Task<Results<Ok<List<RunResponse>>, ValidationProblem>> ListAsync(EvaluationDbContext db, string? status, CancellationToken ct)
    {
        var query = db.Runs.AsNoTracking();
        if (status is not null)
        {
            // By name only: Enum.TryParse would also take "7" or "1,2".
            if (Enum.GetNames<RunStatus>().FirstOrDefault(n => n.Equals(status, StringComparison.OrdinalIgnoreCase)) is not { } name)
                return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["status"] = [$"Unknown status '{status}'; use one of {string.Join(", ", Enum.GetNames<RunStatus>())}."] });
            var s = Enum.Parse<RunStatus>(name);
            query = query.Where(r => r.Status == s);
        }
        var runs = await query.OrderByDescending(r => r.CreatedAt).Take(200).ToListAsync(ct);
        var ids = runs.Select(r => r.Id).ToList();
        var counts = await db.ItemResults.Where(r => ids.Contains(r.RunId)).GroupBy(r => r.RunId).Select(g => new { g.Key, Count = g.Count() }).ToDictionaryAsync(g => g.Key, g => g.Count, ct);
        return TypedResults.Ok(runs.Select(r => ToResponse(r, counts.GetValueOrDefault(r.Id), withSummaries: false)).ToList());
    }

    public static async Task<Results<Accepted<RunResponse>, ValidationProblem, ProblemHttpResult>> CreateAsync(RunCreateRequest request, EvaluationDbContext db, RunFactory factory, WorkQueue<EvaluationDbContext, RunEntity> queue, CancellationToken ct)
    {
        ArtifactRef? dataset = request.DatasetArtifact;
        if (dataset is null && request.Dataset is { Length: > 0 } sha)
            dataset = await db.Datasets.AsNoTracking().FirstOrDefaultAsync(d => d.Sha256 == sha, ct) is { } d ? DatasetsApi.Ref(d) : null;
        if (dataset is null)
            return TypedResults.ValidationProblem(new Dictionary<string, string[]>
            {
                ["dataset"] = [request.Dataset is null ? "Name the dataset: 'dataset' (SHA-256 of an uploaded dataset) or 'datasetArtifact'." : $"Dataset '{request.Dataset}' does not exist (POST /api/evaluation/datasets uploads one)."],
            }, title: "The run is not valid.");
        if (request.RunId is { } existing && await db.Runs.AnyAsync(r => r.Id == existing, ct))
            return TypedResults.Problem($"Run {existing} already exists.", statusCode: StatusCodes.Status409Conflict, title: "The run exists.");

        var (run, errors) = await factory.CreateAsync(new RunEvaluation
        {
            RunId = request.RunId ?? Guid.CreateVersion7(),
            ExperimentId = request.ExperimentId,
            Prompts = request.Prompts,
            ModelEndpoints = request.ModelEndpoints,
            Dataset = dataset,
            Scorers = request.Scorers ?? ["exact"],
            Repeats = request.Repeats,
            RetrievalCollection = request.RetrievalCollection,
            RetrievalTopK = request.RetrievalTopK,
            Temperature = request.Temperature,
            MaxTokens = request.MaxTokens,
            JudgeRubric = request.JudgeRubric,
            ConstrainToLabels = request.ConstrainToLabels,
            Labels = request.Labels,
        }, ct);
        if (run is null)
            return TypedResults.ValidationProblem(errors, title: "The run is not valid.");
        // The same runId posted twice at once: the first insert wins.
        if (!await db.SaveUnlessTakenAsync(t => db.Runs.AsNoTracking().AnyAsync(r => r.Id == run.Id, t), ct))
            return TypedResults.Problem($"Run {run.Id} already exists.", statusCode: StatusCodes.Status409Conflict, title: "The run exists.");
        queue.Nudge();
        return TypedResults.Accepted($"/api/evaluation/runs/{run.Id}", ToResponse(run, 0, withSummaries: true));
    }

    public static async Task<Results<Ok<RunResponse>, NotFound>> GetAsync(Guid id, EvaluationDbContext db, CancellationToken ct)
    {
        var run = await db.Runs.AsNoTracking().FirstOrDefaultAsync(r => r.Id == id, ct);
        if (run is null)
            return TypedResults.NotFound();
        var completed = await db.ItemResults.CountAsync(r => r.RunId == id, ct);
        return TypedResults.Ok(ToResponse(run, completed, withSummaries: true));
    }

    /// <summary>The per-item results stored so far, as JSONL (also while the run executes).</summary>
    public static async Task<Results<EmptyHttpResult, NotFound, ProblemHttpResult>> ResultsAsync(Guid id, HttpContext http, EvaluationDbContext db, IArtifactStore artifacts, CancellationToken ct)
    {
        var run = await db.Runs.AsNoTracking().FirstOrDefaultAsync(r => r.Id == id, ct);
        if (run is null)
            return TypedResults.NotFound();
        if (run.Spec.IsNone)
            return TypedResults.Problem($"Run {id} never started: {run.Error}", statusCode: StatusCodes.Status409Conflict, title: "The run has no results.");
        List<DatasetItem> items;
        try
        {
            items = DatasetReader.Parse(await artifacts.ReadVerifiedAsync(RunFactory.DatasetRef(run), ct));
        }
        catch (Exception e) when (e is ArtifactNotFoundException or ArtifactCorruptException)
        {
            return TypedResults.Problem(e.Message, statusCode: StatusCodes.Status409Conflict, title: "The run's dataset cannot be read.");
        }
        var spec = run.Spec;
        http.Response.ContentType = "application/jsonl";
        await foreach (var result in db.ItemResults.AsNoTracking().Where(r => r.RunId == id).OrderBy(r => r.Pair).ThenBy(r => r.Item).ThenBy(r => r.Repeat).AsAsyncEnumerable().WithCancellation(ct))
            await EvaluationResultsJsonl.WriteLineAsync(http.Response.Body, RunExecutor.ToResult(result, items[result.Item], spec), ct);
        return TypedResults.Empty;
    }

    public static async Task<Results<Accepted<RunResponse>, NotFound, ProblemHttpResult>> CancelAsync(Guid id, ClaimsPrincipal user, EvaluationDbContext db, WorkQueue<EvaluationDbContext, RunEntity> queue, CancellationToken ct)
    {
        var run = await db.Runs.FirstOrDefaultAsync(r => r.Id == id, ct);
        if (run is null)
            return TypedResults.NotFound();
        if (run.Status is RunStatus.Completed or RunStatus.Failed or RunStatus.Cancelled)
            return TypedResults.Problem($"Run {id} is already {run.Status.ToString().ToLowerInvariant()}.", statusCode: StatusCodes.Status409Conflict, title: "The run has finished.");
        run.CancelledBy = user.Identity?.Name ?? "anonymous";
        await db.SaveChangesAsync(ct);
        // Executing here: stop it now. Queued: the worker sees CancelledBy when it picks the run up.
        if (!queue.CancelLocal(id))
            queue.Nudge();
        var completed = await db.ItemResults.CountAsync(r => r.RunId == id, ct);
        return TypedResults.Accepted($"/api/evaluation/runs/{id}", ToResponse(run, completed, withSummaries: false));
    }

    private static RunResponse ToResponse(RunEntity r, int completed, bool withSummaries) => new(
        r.Id, r.ExperimentId, r.Status, r.TotalCalls, completed, r.Error,
        r.Spec.IsNone ? null : r.Spec,
        withSummaries ? r.Summaries : null,
        r.ResultsArtifact,
        r.CreatedAt, r.StartedAt, r.FinishedAt);
}

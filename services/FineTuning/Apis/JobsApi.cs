using System.Globalization;
using System.Security.Claims;
using System.Text.Json;
using System.Text.Json.Serialization;
using AspireTune.Contracts.Common;
using AspireTune.Contracts.FineTuning;
using AspireTune.FineTuning.Consumers;
using AspireTune.FineTuning.Curation;
using AspireTune.FineTuning.Data;
using AspireTune.FineTuning.Jobs;
using AspireTune.ServiceDefaults.Security;
using MassTransit;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.FineTuning.Apis;

/// <summary>Body of <c>POST /api/fine-tuning/jobs</c>.</summary>
public sealed record CreateJobRequest
{
    /// <summary>Base model id in the registry.</summary>
    [JsonPropertyName("model")] public string? Model { get; init; }
    /// <summary>Id of an uploaded file (<c>file-...</c>).</summary>
    [JsonPropertyName("training_file")] public string? TrainingFile { get; init; }
    [JsonPropertyName("validation_file")] public string? ValidationFile { get; init; }
    /// <summary>Held-out test file, for the leakage check.</summary>
    [JsonPropertyName("test_file")] public string? TestFile { get; init; }
    [JsonPropertyName("suffix")] public string? Suffix { get; init; }
    /// <summary>Numbers, strings or "auto"; see docs/finetuning.md for names, ranges and defaults.</summary>
    [JsonPropertyName("hyperparameters")] public Dictionary<string, JsonElement>? Hyperparameters { get; init; }
    [JsonPropertyName("experiment_id")] public Guid? ExperimentId { get; init; }
    /// <summary><c>supervised</c> (default) or <c>dpo</c> (preference pairs; see docs/finetuning.md).</summary>
    [JsonPropertyName("method")] public string? Method { get; init; }
}

public sealed record JobError(
    [property: JsonPropertyName("code")] string Code,
    [property: JsonPropertyName("message")] string Message);

public sealed record JobResponse
{
    [JsonPropertyName("id")] public required string Id { get; init; }
    [JsonPropertyName("object")] public string Object => "fine_tuning.job";
    [JsonPropertyName("model")] public required string Model { get; init; }
    [JsonPropertyName("method")] public required string Method { get; init; }
    [JsonPropertyName("status")] public required string Status { get; init; }
    [JsonPropertyName("created_at")] public required long CreatedAt { get; init; }
    [JsonPropertyName("started_at")] public long? StartedAt { get; init; }
    [JsonPropertyName("finished_at")] public long? FinishedAt { get; init; }
    [JsonPropertyName("fine_tuned_model")] public string? FineTunedModel { get; init; }
    [JsonPropertyName("training_file")] public required string TrainingFile { get; init; }
    [JsonPropertyName("validation_file")] public string? ValidationFile { get; init; }
    [JsonPropertyName("test_file")] public string? TestFile { get; init; }
    [JsonPropertyName("suffix")] public string? Suffix { get; init; }
    /// <summary>As requested until validation; afterwards the values training uses ("auto" resolved).</summary>
    [JsonPropertyName("hyperparameters")] public required JsonElement Hyperparameters { get; init; }
    [JsonPropertyName("step")] public int Step { get; init; }
    [JsonPropertyName("total_steps")] public int TotalSteps { get; init; }
    [JsonPropertyName("trained_tokens")] public long? TrainedTokens { get; init; }
    [JsonPropertyName("cancel_requested")] public bool CancelRequested { get; init; }
    [JsonPropertyName("attempts")] public int Attempts { get; init; }
    [JsonPropertyName("error")] public JobError? Error { get; init; }
    [JsonPropertyName("quality_report")] public QualityReport? QualityReport { get; init; }
    [JsonPropertyName("best_metrics")] public IReadOnlyList<MetricValue>? BestMetrics { get; init; }
    [JsonPropertyName("fit_verdict")] public string? FitVerdict { get; init; }
    [JsonPropertyName("fit_advice")] public string? FitAdvice { get; init; }
    [JsonPropertyName("experiment_id")] public Guid? ExperimentId { get; init; }

    public static JobResponse From(FineTuningJob j) => new()
    {
        Id = JobIds.Format(j.Id),
        Model = j.BaseModel,
        Method = j.Method,
        Status = j.Status,
        CreatedAt = j.CreatedAt.ToUnixTimeSeconds(),
        StartedAt = j.StartedAt?.ToUnixTimeSeconds(),
        FinishedAt = j.FinishedAt?.ToUnixTimeSeconds(),
        FineTunedModel = j.FineTunedModel,
        TrainingFile = j.TrainingFileId ?? j.TrainingArtifactId,
        ValidationFile = j.ValidationFileId ?? j.ValidationArtifactId,
        TestFile = j.TestFileId ?? j.TestArtifactId,
        Suffix = j.Suffix,
        Hyperparameters = j.ResolvedHyperparameters is { } resolved ? JsonSerializer.SerializeToElement(resolved) : JsonSerializer.SerializeToElement(j.RequestedHyperparameters),
        Step = j.Step,
        TotalSteps = j.TotalSteps,
        TrainedTokens = j.Status == JobStatus.Succeeded ? j.TrainedTokens : null,
        CancelRequested = j.CancelRequested,
        Attempts = j.Attempts,
        Error = j.ErrorCode is null ? null : new JobError(j.ErrorCode, j.ErrorMessage ?? ""),
        QualityReport = j.QualityReport,
        BestMetrics = j.BestMetrics,
        FitVerdict = j.FitVerdict,
        FitAdvice = j.FitAdvice,
        ExperimentId = j.ExperimentId,
    };
}

public sealed record ListResponse<T>(
    [property: JsonPropertyName("data")] IReadOnlyList<T> Data,
    [property: JsonPropertyName("has_more")] bool HasMore)
{
    [JsonPropertyName("object")] public string Object => "list";
}

public sealed record JobEventResponse(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("created_at")] long CreatedAt,
    [property: JsonPropertyName("level")] string Level,
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("message")] string Message,
    [property: JsonPropertyName("data")] JsonElement? Data);

public sealed record CheckpointMetrics(
    [property: JsonPropertyName("step")] int Step,
    [property: JsonPropertyName("train_loss")] double TrainLoss,
    [property: JsonPropertyName("valid_loss")] double? ValidLoss,
    [property: JsonPropertyName("valid_mean_token_accuracy")] double? ValidMeanTokenAccuracy);

public sealed record CheckpointResponse(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("created_at")] long CreatedAt,
    [property: JsonPropertyName("fine_tuning_job_id")] string JobId,
    [property: JsonPropertyName("step_number")] int Step,
    [property: JsonPropertyName("metrics")] CheckpointMetrics Metrics,
    [property: JsonPropertyName("fine_tuned_model_checkpoint")] string? FineTunedModelCheckpoint);

public sealed record MetricRow(
    [property: JsonPropertyName("step")] int Step,
    [property: JsonPropertyName("epoch")] double Epoch,
    [property: JsonPropertyName("train_loss")] double TrainLoss,
    [property: JsonPropertyName("valid_loss")] double? ValidLoss,
    [property: JsonPropertyName("valid_mean_token_accuracy")] double? ValidMeanTokenAccuracy,
    [property: JsonPropertyName("learning_rate")] double LearningRate,
    [property: JsonPropertyName("tokens_per_second")] double TokensPerSecond);

public static class JobIds
{
    public static string Format(Guid id) => "ftjob-" + id.ToString("N");

    public static bool TryParse(string text, out Guid id) =>
        Guid.TryParse(text.StartsWith("ftjob-", StringComparison.Ordinal) ? text[6..] : text, out id);
}

/// <summary><c>/api/fine-tuning/jobs</c>: create, list, get, cancel, events, checkpoints, metrics.</summary>
public static class JobsApi
{
    private const int MaxPageSize = 100;

    public static IEndpointRouteBuilder MapJobsApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/fine-tuning/jobs").WithTags("Fine-tuning jobs");
        group.MapPost("/", CreateAsync).RequireAuthorization(Policies.Operator);
        group.MapGet("/", ListAsync).RequireAuthorization(Policies.Reader);
        group.MapGet("/{id}", GetAsync).RequireAuthorization(Policies.Reader);
        group.MapPost("/{id}/cancel", CancelAsync).RequireAuthorization(Policies.Operator);
        group.MapPost("/{id}/pause", PauseAsync).RequireAuthorization(Policies.Operator);
        group.MapPost("/{id}/resume", ResumeAsync).RequireAuthorization(Policies.Operator);
        group.MapGet("/{id}/events", EventsAsync).RequireAuthorization(Policies.Reader);
        group.MapGet("/{id}/checkpoints", CheckpointsAsync).RequireAuthorization(Policies.Reader);
        group.MapGet("/{id}/metrics", MetricsAsync).RequireAuthorization(Policies.Reader);
        return app;
    }

    public static async Task<Results<Created<JobResponse>, ValidationProblem>> CreateAsync(
        CreateJobRequest request, FineTuningDbContext db, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        var hyper = new Dictionary<string, string>();
        foreach (var (name, value) in request.Hyperparameters ?? [])
        {
            switch (value.ValueKind)
            {
                case JsonValueKind.Number:
                    hyper[name] = value.GetRawText();
                    break;
                case JsonValueKind.String:
                    hyper[name] = value.GetString()!;
                    break;
                default:
                    errors[$"hyperparameters.{name}"] = [$"Expected a number or a string (\"auto\"), got {value.ValueKind.ToString().ToLowerInvariant()}."];
                    break;
            }
        }
        var submission = new JobSubmission
        {
            Model = request.Model,
            TrainingFile = request.TrainingFile,
            ValidationFile = request.ValidationFile,
            TestFile = request.TestFile,
            Suffix = request.Suffix,
            Hyperparameters = hyper,
            ExperimentId = request.ExperimentId,
            Method = request.Method ?? TrainingMethods.Supervised,
        };
        var result = errors.Count > 0 ? null : await JobSubmitter.SubmitAsync(submission, db, ct);
        foreach (var (key, messages) in result?.Errors ?? [])
            errors[key] = messages;
        if (errors.Count > 0)
            return TypedResults.ValidationProblem(errors, title: "The fine-tuning job request is not valid.");
        var job = result!.Job!;
        return TypedResults.Created($"/api/fine-tuning/jobs/{JobIds.Format(job.Id)}", JobResponse.From(job));
    }

    internal static StartFineTuning ToCommand(FineTuningJob job) => new()
    {
        JobId = job.Id,
        ExperimentId = job.ExperimentId,
        BaseModel = job.BaseModel,
        TrainingFile = new ArtifactRef { Id = job.TrainingArtifactId, Sha256 = job.TrainingSha256, Length = job.TrainingBytes, ContentType = "application/jsonl" },
        ValidationFile = job.ValidationArtifactId is null ? null : new ArtifactRef { Id = job.ValidationArtifactId, Sha256 = job.ValidationSha256!, Length = job.ValidationBytes, ContentType = "application/jsonl" },
        TestFile = job.TestArtifactId is null ? null : new ArtifactRef { Id = job.TestArtifactId, Sha256 = job.TestSha256!, Length = job.TestBytes, ContentType = "application/jsonl" },
        Suffix = job.Suffix,
        Hyperparameters = job.RequestedHyperparameters,
        Method = job.Method,
    };

    public static async Task<Results<Ok<ListResponse<JobResponse>>, ValidationProblem>> ListAsync(
        FineTuningDbContext db, string? after, int? limit, string? status, CancellationToken ct)
    {
        var take = limit ?? 20;
        if (take is < 1 or > MaxPageSize)
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["limit"] = [$"limit must be between 1 and {MaxPageSize}."] });
        var query = db.Jobs.AsNoTracking().AsQueryable();
        string[] statuses = [JobStatus.ValidatingFiles, JobStatus.Queued, JobStatus.Running, JobStatus.Paused, JobStatus.Succeeded, JobStatus.Failed, JobStatus.Cancelled];
        if (status is not null && !statuses.Contains(status))
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["status"] = [$"Unknown status '{status}'; use one of {string.Join(", ", statuses)}."] });
        if (status is not null)
            query = query.Where(j => j.Status == status);
        if (after is not null)
        {
            if (!JobIds.TryParse(after, out var afterId) || await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == afterId, ct) is not { } cursor)
                return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["after"] = [$"'{after}' is not the id of a job."] });
            query = query.Where(j => j.CreatedAt < cursor.CreatedAt);
        }
        var page = await query.OrderByDescending(j => j.CreatedAt).Take(take + 1).ToListAsync(ct);
        return TypedResults.Ok(new ListResponse<JobResponse>(page.Take(take).Select(JobResponse.From).ToList(), page.Count > take));
    }

    public static async Task<Results<Ok<JobResponse>, NotFound<ProblemDetails>>> GetAsync(string id, FineTuningDbContext db, CancellationToken ct) =>
        await FindAsync(db, id, ct) is { } job ? TypedResults.Ok(JobResponse.From(job)) : JobNotFound(id);

    /// <summary>
    /// Cancels a job. Not yet training: cancelled at once. Training: the worker stops at its next heartbeat
    /// and marks it cancelled (the response says <c>cancel_requested</c>). Finished: 409.
    /// </summary>
    public static async Task<Results<Ok<JobResponse>, NotFound<ProblemDetails>, Conflict<ProblemDetails>>> CancelAsync(
        string id, FineTuningDbContext db, CancellationToken ct)
    {
        if (await FindAsync(db, id, ct) is not { } job)
            return JobNotFound(id);
        var (current, cancellable) = await JobSubmitter.CancelAsync(db, job, ct);
        if (!cancellable)
            return TypedResults.Conflict(new ProblemDetails
            {
                Status = 409,
                Title = "The job has already finished.",
                Detail = $"Job {JobIds.Format(job.Id)} is {current.Status}; only validating_files, queued, running and paused jobs can be cancelled.",
            });
        return TypedResults.Ok(JobResponse.From(current));
    }

    /// <summary>Pauses a job in validating_files, queued or running (as <c>/v1/fine_tuning/jobs/{id}/pause</c>); any other status: 409.</summary>
    public static async Task<Results<Ok<JobResponse>, NotFound<ProblemDetails>, Conflict<ProblemDetails>>> PauseAsync(
        string id, FineTuningDbContext db, ClaimsPrincipal user, CancellationToken ct)
    {
        if (await FindAsync(db, id, ct) is not { } job)
            return JobNotFound(id);
        var (current, paused) = await JobSubmitter.PauseAsync(db, job, user.Identity?.Name, ct);
        return paused ? TypedResults.Ok(JobResponse.From(current)) : NotInStatus(current, "only validating_files, queued and running jobs can be paused");
    }

    /// <summary>Resumes a paused job from its last checkpoint (as <c>/v1/fine_tuning/jobs/{id}/resume</c>); any other status: 409.</summary>
    public static async Task<Results<Ok<JobResponse>, NotFound<ProblemDetails>, Conflict<ProblemDetails>>> ResumeAsync(
        string id, FineTuningDbContext db, ServiceDefaults.Work.WorkQueue<FineTuningDbContext, FineTuningJob> queue, ClaimsPrincipal user, CancellationToken ct)
    {
        if (await FindAsync(db, id, ct) is not { } job)
            return JobNotFound(id);
        var (current, resumed) = await JobSubmitter.ResumeAsync(db, job, user.Identity?.Name, ct);
        if (!resumed)
            return NotInStatus(current, "only paused jobs can be resumed");
        queue.Nudge();
        return TypedResults.Ok(JobResponse.From(current));
    }

    private static Conflict<ProblemDetails> NotInStatus(FineTuningJob job, string rule) => TypedResults.Conflict(new ProblemDetails
    {
        Status = 409,
        Title = $"The job is {job.Status}.",
        Detail = $"Job {JobIds.Format(job.Id)} is {job.Status}; {rule}.",
    });

    public static async Task<Results<Ok<ListResponse<JobEventResponse>>, NotFound<ProblemDetails>, ValidationProblem>> EventsAsync(
        string id, FineTuningDbContext db, string? after, int? limit, CancellationToken ct)
    {
        if (await FindAsync(db, id, ct) is not { } job)
            return JobNotFound(id);
        var take = limit ?? 100;
        if (take is < 1 or > 1000)
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["limit"] = ["limit must be between 1 and 1000."] });
        long afterId = 0;
        if (after is not null && !long.TryParse(after.StartsWith("ftevent-", StringComparison.Ordinal) ? after[8..] : after, NumberStyles.None, CultureInfo.InvariantCulture, out afterId))
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["after"] = [$"'{after}' is not an event id."] });
        // Oldest first, so a client polling with after=<last id> sees each event once, in order.
        var page = await db.JobEvents.AsNoTracking().Where(e => e.JobId == job.Id && e.Id > afterId).OrderBy(e => e.Id).Take(take + 1).ToListAsync(ct);
        var data = page.Take(take).Select(e => new JobEventResponse($"ftevent-{e.Id}", "fine_tuning.job.event", e.CreatedAt.ToUnixTimeSeconds(), e.Level, e.Type, e.Message,
            e.Data)).ToList();
        return TypedResults.Ok(new ListResponse<JobEventResponse>(data, page.Count > take));
    }

    public static async Task<Results<Ok<ListResponse<CheckpointResponse>>, NotFound<ProblemDetails>>> CheckpointsAsync(string id, FineTuningDbContext db, Registry.CheckpointModels models, CancellationToken ct)
    {
        if (await FindAsync(db, id, ct) is not { } job)
            return JobNotFound(id);
        var rows = await db.Checkpoints.AsNoTracking().Where(c => c.JobId == job.Id).ToListAsync(ct);
        var data = rows.OrderByDescending(c => c.Step).Select(c => new CheckpointResponse(c.Id, "fine_tuning.job.checkpoint", c.CreatedAt.ToUnixTimeSeconds(), JobIds.Format(job.Id), c.Step,
            new CheckpointMetrics(c.Step, c.TrainLoss, c.ValidLoss, c.ValidMeanTokenAccuracy), models.ServedId(job, c))).ToList();
        return TypedResults.Ok(new ListResponse<CheckpointResponse>(data, false));
    }

    public static async Task<Results<Ok<ListResponse<MetricRow>>, NotFound<ProblemDetails>>> MetricsAsync(string id, FineTuningDbContext db, CancellationToken ct)
    {
        if (await FindAsync(db, id, ct) is not { } job)
            return JobNotFound(id);
        var rows = await db.Metrics.AsNoTracking().Where(m => m.JobId == job.Id).OrderBy(m => m.Id).ToListAsync(ct);
        return TypedResults.Ok(new ListResponse<MetricRow>(rows.Select(m => new MetricRow(m.Step, m.Epoch, m.TrainLoss, m.ValidLoss, m.ValidMeanTokenAccuracy, m.LearningRate, m.TokensPerSecond)).ToList(), false));
    }

    private static async Task<FineTuningJob?> FindAsync(FineTuningDbContext db, string id, CancellationToken ct) =>
        JobIds.TryParse(id, out var guid) ? await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == guid, ct) : null;

    private static NotFound<ProblemDetails> JobNotFound(string id) =>
        TypedResults.NotFound(new ProblemDetails { Status = 404, Title = "Job not found.", Detail = $"No fine-tuning job has the id '{id}'." });
}

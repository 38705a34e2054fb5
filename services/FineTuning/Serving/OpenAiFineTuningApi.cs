using System.Globalization;
using System.Security.Claims;
using System.Text.Json;
using System.Text.Json.Nodes;
using AspireTune.FineTuning.Apis;
using AspireTune.FineTuning.Data;
using AspireTune.FineTuning.Jobs;
using AspireTune.ServiceDefaults.Security;
using AspireTune.ServiceDefaults.Work;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using static AspireTune.ServiceDefaults.OpenAi.OpenAiRequest;

namespace AspireTune.FineTuning.Serving;

/// <summary>
/// <c>/v1/fine_tuning/jobs</c> in the OpenAI shapes, for scripts written against the hosted API: create (the
/// <c>method</c> object or the older top-level <c>hyperparameters</c>), list, retrieve, cancel, events and
/// checkpoints. The same jobs table, command and bus events as <c>/api/fine-tuning/jobs</c>: one store, two routes.
/// </summary>
public static class OpenAiFineTuningApi
{
    public static IEndpointRouteBuilder MapOpenAiFineTuningApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/fine_tuning/jobs").WithTags("OpenAI-compatible fine-tuning").WithMetadata(OpenAiException.Shape);
        group.MapPost("/", CreateAsync).RequireAuthorization(Policies.Operator);
        group.MapGet("/", ListAsync).RequireAuthorization(Policies.Reader);
        group.MapGet("/{id}", GetAsync).RequireAuthorization(Policies.Reader);
        group.MapPost("/{id}/cancel", CancelAsync).RequireAuthorization(Policies.Operator);
        group.MapPost("/{id}/pause", PauseAsync).RequireAuthorization(Policies.Operator);
        group.MapPost("/{id}/resume", ResumeAsync).RequireAuthorization(Policies.Operator);
        group.MapGet("/{id}/events", EventsAsync).RequireAuthorization(Policies.Reader);
        group.MapGet("/{id}/checkpoints", CheckpointsAsync).RequireAuthorization(Policies.Reader);
        return app;
    }

    public static async Task<IResult> CreateAsync(HttpRequest http, FineTuningDbContext db, IOptions<FineTuningOptions> options, CancellationToken ct)
    {
        try
        {
            var body = await ReadBodyAsync(http, ct);
            var (method, hyper) = ReadHyperparameters(body);
            if (body["integrations"] is JsonArray { Count: > 0 })
                throw new OpenAiException(400, "Integrations (Weights & Biases) are not supported here; the job's metrics are in its events and results file.", "integrations");
            var seed = body["seed"] switch
            {
                null => (long?)null,
                JsonValue v when v.GetValueKind() == JsonValueKind.Null => null,
                JsonValue v when v.TryGetValue<long>(out var s) && s is >= 0 and <= int.MaxValue => s,
                _ => throw new OpenAiException(400, "'seed' must be an integer between 0 and 2147483647.", "seed"),
            };
            if (seed is { } given)
                hyper["seed"] = given.ToString(CultureInfo.InvariantCulture);
            var submission = new JobSubmission
            {
                Model = OptionalString(body, "model"),
                TrainingFile = OptionalString(body, "training_file"),
                ValidationFile = OptionalString(body, "validation_file"),
                Suffix = OptionalString(body, "suffix"),
                Hyperparameters = hyper,
                Method = method,
                Metadata = ReadMetadata(body),
            };
            var result = await JobSubmitter.SubmitAsync(submission, db, ct);
            if (result.Errors.Count > 0)
            {
                var (param, messages) = result.Errors.First();
                var code = param is "training_file" or "validation_file" && submission.TrainingFile is not null ? "invalid_file"
                    : param == "model" ? "model_not_available" : null;
                throw new OpenAiException(400, string.Join(" ", result.Errors.SelectMany(e => e.Value)), param, code);
            }
            return Results.Json(await MapAsync(db, [result.Job!], options.Value, ct) is [var job] ? job : null);
        }
        catch (OpenAiException ex)
        {
            return ex.ToResult();
        }
    }

    /// <summary>
    /// The method and its requested hyperparameters: <c>method.{type}.hyperparameters</c> (supervised or dpo), or the
    /// older top-level <c>hyperparameters</c> of a supervised job.
    /// </summary>
    private static (string Method, Dictionary<string, string> Hyperparameters) ReadHyperparameters(JsonObject body)
    {
        JsonNode? node = body["hyperparameters"];
        var path = "hyperparameters";
        var type = TrainingMethods.Supervised;
        if (body["method"] is JsonObject method)
        {
            type = OptionalString(method, "type") ?? throw new OpenAiException(400, "'method.type' is required: supervised or dpo.", "method.type");
            if (type == "reinforcement")
                throw new OpenAiException(400, "method.type 'reinforcement' is not implemented on this server; use 'supervised' or 'dpo'.", "method.type");
            if (!TrainingMethods.IsKnown(type))
                throw new OpenAiException(400, $"method.type '{type}' is not a fine-tuning method; use 'supervised' or 'dpo'.", "method.type");
            if (node is not null && method[type] is not null)
                throw new OpenAiException(400, $"Give hyperparameters either in method.{type} or at the top level, not both.", "hyperparameters");
            if (method[type] is JsonObject settings)
            {
                node = settings["hyperparameters"];
                path = $"method.{type}.hyperparameters";
            }
        }
        else if (body["method"] is not null && body["method"]!.GetValueKind() != JsonValueKind.Null)
            throw new OpenAiException(400, "'method' must be an object such as {\"type\": \"supervised\"}.", "method");

        var hyper = new Dictionary<string, string>();
        if (node is null || node.GetValueKind() == JsonValueKind.Null)
            return (type, hyper);
        if (node is not JsonObject values)
            throw new OpenAiException(400, $"'{path}' must be an object.", path);
        foreach (var (name, value) in values)
        {
            hyper[name] = value?.GetValueKind() switch
            {
                JsonValueKind.Number => value.ToJsonString(),
                JsonValueKind.String => value.GetValue<string>(),
                _ => throw new OpenAiException(400, $"{path}.{name} must be a number or \"auto\".", $"{path}.{name}"),
            };
        }
        foreach (var (key, messages) in HyperparameterSpec.Validate(hyper, type))
            throw new OpenAiException(400, messages[0], path + key["hyperparameters".Length..]);
        return (type, hyper);
    }

    private static Dictionary<string, string>? ReadMetadata(JsonObject body)
    {
        if (body["metadata"] is null || body["metadata"]!.GetValueKind() == JsonValueKind.Null)
            return null;
        if (body["metadata"] is not JsonObject metadata)
            throw new OpenAiException(400, "'metadata' must be an object of string values.", "metadata");
        return metadata.ToDictionary(p => p.Key, p => p.Value?.GetValueKind() == JsonValueKind.String
            ? p.Value.GetValue<string>()
            : throw new OpenAiException(400, $"metadata.{p.Key} must be a string.", "metadata"));
    }

    /// <summary>Newest first, <c>after</c> a job id, <c>limit</c> 1-100 (default 20); <c>metadata[k]=v</c> filters.</summary>
    public static async Task<IResult> ListAsync(HttpRequest http, FineTuningDbContext db, IOptions<FineTuningOptions> options, string? after, int? limit, CancellationToken ct)
    {
        var take = limit ?? 20;
        if (take is < 1 or > 100)
            return new OpenAiException(400, $"limit is {take}; it must be between 1 and 100.", "limit").ToResult();
        var query = db.Jobs.AsNoTracking().AsQueryable();
        if (after is not null)
        {
            if (!JobIds.TryParse(after, out var afterId) || await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == afterId, ct) is not { } cursor)
                return new OpenAiException(400, $"'{after}' is not the id of a fine-tuning job.", "after").ToResult();
            query = query.Where(j => j.CreatedAt < cursor.CreatedAt);
        }
        var filters = http.Query.Where(q => q.Key.StartsWith("metadata[", StringComparison.Ordinal) && q.Key.EndsWith(']'))
            .Select(q => (Key: q.Key[9..^1], Value: q.Value.ToString())).ToList();
        var page = new List<FineTuningJob>();
        // Metadata is a JSON column: filtered here, page by page, so the cursor stays in the database.
        var candidates = query.OrderByDescending(j => j.CreatedAt);
        var skip = 0;
        while (page.Count <= take)
        {
            var chunk = await candidates.Skip(skip).Take(200).ToListAsync(ct);
            page.AddRange(chunk.Where(j => Matches(j, filters)));
            if (chunk.Count < 200)
                break;
            skip += chunk.Count;
        }
        var data = await MapAsync(db, page.Take(take).ToList(), options.Value, ct);
        return Results.Json(new OpenAiList<OpenAiJob>(data, page.Count > take, j => j.Id));
    }

    private static bool Matches(FineTuningJob job, List<(string Key, string Value)> filters)
    {
        if (filters.Count == 0)
            return true;
        var metadata = job.Metadata ?? [];
        return filters.All(f => metadata.TryGetValue(f.Key, out var v) && v == f.Value);
    }

    public static async Task<IResult> GetAsync(string id, FineTuningDbContext db, IOptions<FineTuningOptions> options, CancellationToken ct) =>
        await FindAsync(db, id, ct) is { } job ? Results.Json((await MapAsync(db, [job], options.Value, ct))[0]) : JobNotFound(id).ToResult();

    public static async Task<IResult> CancelAsync(string id, FineTuningDbContext db, IOptions<FineTuningOptions> options, CancellationToken ct)
    {
        if (await FindAsync(db, id, ct) is not { } job)
            return JobNotFound(id).ToResult();
        var (current, cancellable) = await JobSubmitter.CancelAsync(db, job, ct);
        return cancellable
            ? Results.Json((await MapAsync(db, [current], options.Value, ct))[0])
            : new OpenAiException(400, $"Job {id} has already {current.Status}; only validating_files, queued, running and paused jobs can be cancelled.", null, "job_already_finished").ToResult();
    }

    /// <summary>
    /// Pauses a job in validating_files, queued or running (status <c>paused</c>); a running one stops at its worker's next
    /// heartbeat, one in validating_files stays paused once its files pass.
    /// </summary>
    public static async Task<IResult> PauseAsync(string id, FineTuningDbContext db, IOptions<FineTuningOptions> options, ClaimsPrincipal user, CancellationToken ct)
    {
        if (await FindAsync(db, id, ct) is not { } job)
            return JobNotFound(id).ToResult();
        var (current, paused) = await JobSubmitter.PauseAsync(db, job, user.Identity?.Name, ct);
        return paused
            ? Results.Json((await MapAsync(db, [current], options.Value, ct))[0])
            : new OpenAiException(400, $"Job {id} is {current.Status}; only validating_files, queued and running jobs can be paused.", null, "job_not_pausable").ToResult();
    }

    /// <summary>Resumes a paused job: queued again, continuing from its last checkpoint (validating_files again when its files were not yet validated).</summary>
    public static async Task<IResult> ResumeAsync(string id, FineTuningDbContext db, IOptions<FineTuningOptions> options,
        WorkQueue<FineTuningDbContext, FineTuningJob> queue, ClaimsPrincipal user, CancellationToken ct)
    {
        if (await FindAsync(db, id, ct) is not { } job)
            return JobNotFound(id).ToResult();
        var (current, resumed) = await JobSubmitter.ResumeAsync(db, job, user.Identity?.Name, ct);
        if (!resumed)
            return new OpenAiException(400, $"Job {id} is {current.Status}; only paused jobs can be resumed.", null, "job_not_paused").ToResult();
        queue.Nudge();
        return Results.Json((await MapAsync(db, [current], options.Value, ct))[0]);
    }

    /// <summary>Newest first, as the hosted API lists them; <c>after</c> an event id gives the older ones.</summary>
    public static async Task<IResult> EventsAsync(string id, FineTuningDbContext db, string? after, int? limit, CancellationToken ct)
    {
        if (await FindAsync(db, id, ct) is not { } job)
            return JobNotFound(id).ToResult();
        var take = limit ?? 20;
        if (take is < 1 or > 1000)
            return new OpenAiException(400, $"limit is {take}; it must be between 1 and 1000.", "limit").ToResult();
        var query = db.JobEvents.AsNoTracking().Where(e => e.JobId == job.Id);
        if (after is not null)
        {
            if (!long.TryParse(after.StartsWith("ftevent-", StringComparison.Ordinal) ? after[8..] : after, NumberStyles.None, CultureInfo.InvariantCulture, out var afterId))
                return new OpenAiException(400, $"'{after}' is not an event id.", "after").ToResult();
            query = query.Where(e => e.Id < afterId);
        }
        var page = await query.OrderByDescending(e => e.Id).Take(take + 1).ToListAsync(ct);
        return Results.Json(new OpenAiList<OpenAiJobEvent>(page.Take(take).Select(OpenAiJobMapper.Event).ToList(), page.Count > take, e => e.Id));
    }

    /// <summary>Latest step first; <c>after</c> a checkpoint id, <c>limit</c> 1-100 (default 10).</summary>
    public static async Task<IResult> CheckpointsAsync(string id, FineTuningDbContext db, Registry.CheckpointModels models, string? after, int? limit, CancellationToken ct)
    {
        if (await FindAsync(db, id, ct) is not { } job)
            return JobNotFound(id).ToResult();
        var take = limit ?? 10;
        if (take is < 1 or > 100)
            return new OpenAiException(400, $"limit is {take}; it must be between 1 and 100.", "limit").ToResult();
        var rows = (await db.Checkpoints.AsNoTracking().Where(c => c.JobId == job.Id).ToListAsync(ct)).OrderByDescending(c => c.Step).ToList();
        if (after is not null)
        {
            var at = rows.FindIndex(c => c.Id == after);
            if (at < 0)
                return new OpenAiException(400, $"'{after}' is not a checkpoint of this job.", "after").ToResult();
            rows = rows[(at + 1)..];
        }
        return Results.Json(new OpenAiList<OpenAiCheckpoint>(rows.Take(take).Select(c => OpenAiJobMapper.Checkpoint(c, models.ServedId(job, c))).ToList(), rows.Count > take, c => c.Id));
    }

    private static async Task<List<OpenAiJob>> MapAsync(FineTuningDbContext db, List<FineTuningJob> jobs, FineTuningOptions options, CancellationToken ct)
    {
        var bases = jobs.Select(j => j.BaseModel).Distinct().ToList();
        var parameters = await db.Models.AsNoTracking().Where(m => bases.Contains(m.Id)).ToDictionaryAsync(m => m.Id, m => m.Parameters, ct);
        var now = DateTimeOffset.UtcNow;
        return jobs.Select(j => OpenAiJobMapper.From(j, parameters.GetValueOrDefault(j.BaseModel), options.OrganizationId, now)).ToList();
    }

    private static async Task<FineTuningJob?> FindAsync(FineTuningDbContext db, string id, CancellationToken ct) =>
        JobIds.TryParse(id, out var guid) ? await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == guid, ct) : null;

    private static OpenAiException JobNotFound(string id) => new(404, $"Could not find fine-tune: {id}", "fine_tuning_job_id", "fine_tune_not_found");
}

using System.Globalization;
using System.Text;
using System.Text.Json.Serialization;
using AspireTune.FineTuning.Apis;
using AspireTune.FineTuning.Data;
using AspireTune.FineTuning.Jobs;
using AspireTune.ServiceDefaults.Artifacts;
using AspireTune.ServiceDefaults.Security;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace AspireTune.FineTuning.Serving;

/// <summary>The OpenAI <c>file</c> object.</summary>
public sealed record OpenAiFile
{
    [JsonPropertyName("id")] public required string Id { get; init; }
    [JsonPropertyName("object")] public string Object => "file";
    [JsonPropertyName("bytes")] public required long Bytes { get; init; }
    [JsonPropertyName("created_at")] public required long CreatedAt { get; init; }
    [JsonPropertyName("expires_at")] public long? ExpiresAt => null;
    [JsonPropertyName("filename")] public required string FileName { get; init; }
    [JsonPropertyName("purpose")] public required string Purpose { get; init; }
    [JsonPropertyName("status")] public string Status => "processed";
    [JsonPropertyName("status_details")] public string? StatusDetails => null;

    public static OpenAiFile From(DataFile f) => new() { Id = f.Id, Bytes = f.Bytes, CreatedAt = f.CreatedAt.ToUnixTimeSeconds(), FileName = f.FileName, Purpose = OpenAiFilesApi.FineTunePurpose };
}

/// <summary>A list page in the OpenAI shape (<c>object</c>, <c>data</c>, <c>has_more</c>, <c>first_id</c>, <c>last_id</c>).</summary>
public sealed record OpenAiList<T>([property: JsonIgnore] IReadOnlyList<T> Items, [property: JsonIgnore] bool More, [property: JsonIgnore] Func<T, string> IdOf)
{
    [JsonPropertyName("object")] public string Object => "list";
    [JsonPropertyName("data")] public IReadOnlyList<T> Data => Items;
    [JsonPropertyName("has_more")] public bool HasMore => More;
    [JsonPropertyName("first_id")] public string? FirstId => Items.Count == 0 ? null : IdOf(Items[0]);
    [JsonPropertyName("last_id")] public string? LastId => Items.Count == 0 ? null : IdOf(Items[^1]);
}

/// <summary>
/// <c>/v1/files</c> as the OpenAI SDKs call it: multipart upload with <c>purpose=fine-tune</c>, list, retrieve,
/// content and delete, over the same files table as <c>/api/fine-tuning/files</c>. A succeeded job's metrics
/// are also a file (<c>purpose: fine-tune-results</c>, <c>step_metrics.csv</c>), derived from its metrics rows.
/// </summary>
public static class OpenAiFilesApi
{
    public const string FineTunePurpose = "fine-tune";
    public const string ResultsPurpose = "fine-tune-results";
    private const string ResultPrefix = "file-results-";

    public static IEndpointRouteBuilder MapOpenAiFilesApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/files").WithTags("OpenAI-compatible files").WithMetadata(OpenAiException.Shape);
        group.MapPost("/", UploadAsync).RequireAuthorization(Policies.Operator).DisableAntiforgery();
        group.MapGet("/", ListAsync).RequireAuthorization(Policies.Reader);
        group.MapGet("/{id}", GetAsync).RequireAuthorization(Policies.Reader);
        group.MapGet("/{id}/content", ContentAsync).RequireAuthorization(Policies.Reader);
        group.MapDelete("/{id}", DeleteAsync).RequireAuthorization(Policies.Operator);
        return app;
    }

    public static async Task<IResult> UploadAsync(HttpRequest request, FineTuningDbContext db, IArtifactStore artifacts, IOptions<FineTuningOptions> options, CancellationToken ct)
    {
        try
        {
            var limit = options.Value.MaxUploadBytes;
            if (request.ContentLength > limit)
                throw new OpenAiException(413, FileIntake.TooLargeDetail(request.ContentLength.Value, limit), "file", "file_too_large");
            if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
                size.MaxRequestBodySize = limit + 1024 * 1024;
            if (!request.HasFormContentType)
                throw new OpenAiException(400, "Upload the file as multipart/form-data with the fields 'file' and 'purpose'.", "file");
            var (form, error) = await FileIntake.ReadFormAsync(request, ct);
            if (form is null)
                throw new OpenAiException(400, error!, "file");
            var purpose = form["purpose"].FirstOrDefault();
            if (string.IsNullOrEmpty(purpose))
                throw new OpenAiException(400, "'purpose' is required; this server stores files with purpose 'fine-tune'.", "purpose");
            if (purpose != FineTunePurpose)
                throw new OpenAiException(400, $"The purpose '{purpose}' is not supported here; only 'fine-tune' files are stored.", "purpose");
            var file = form.Files.GetFile("file") ?? throw new OpenAiException(400, "No multipart field named 'file' holds the file.", "file");
            if (file.Length > limit)
                throw new OpenAiException(413, FileIntake.TooLargeDetail(file.Length, limit), "file", "file_too_large");
            await using var body = file.OpenReadStream();
            var intake = await FileIntake.StoreAsync(body, FilesApi.SafeName(file.FileName), limit, db, artifacts, ct);
            return intake.File is { } stored
                ? Results.Json(OpenAiFile.From(stored))
                : new OpenAiException(intake.Status, $"{intake.Title} {intake.Detail}", "file", intake.Status == 413 ? "file_too_large" : "invalid_file").ToResult();
        }
        catch (OpenAiException ex)
        {
            return ex.ToResult();
        }
        catch (BadHttpRequestException ex)
        {
            return new OpenAiException(400, $"The multipart body could not be read: {ex.Message}", "file").ToResult();
        }
    }

    /// <summary>Newest first by default (<c>order=asc</c> for oldest first), <c>after</c> a file id, at most <c>limit</c> (1-10,000, default 10,000).</summary>
    public static async Task<IResult> ListAsync(FineTuningDbContext db, string? purpose, int? limit, string? order, string? after, CancellationToken ct)
    {
        var take = limit ?? 10_000;
        if (take is < 1 or > 10_000)
            return new OpenAiException(400, $"limit is {take}; it must be between 1 and 10000.", "limit").ToResult();
        if (order is not (null or "asc" or "desc"))
            return new OpenAiException(400, $"order is '{order}'; it must be 'asc' or 'desc'.", "order").ToResult();
        if (purpose is not (null or FineTunePurpose or ResultsPurpose))
            return Results.Json(new OpenAiList<OpenAiFile>([], false, f => f.Id));

        var files = purpose == ResultsPurpose ? [] : (await db.Files.AsNoTracking().ToListAsync(ct)).Select(OpenAiFile.From);
        var results = purpose == FineTunePurpose ? [] : (await db.Jobs.AsNoTracking().Where(j => j.Status == JobStatus.Succeeded).ToListAsync(ct))
            .Select(j => ResultFile(j, 0));
        // Ordered by (created_at, id) so that the cursor is exact when several files share a second.
        var all = files.Concat(results).OrderBy(f => f.CreatedAt).ThenBy(f => f.Id, StringComparer.Ordinal).ToList();
        if (order != "asc")
            all.Reverse();
        if (after is not null)
        {
            var at = all.FindIndex(f => f.Id == after);
            if (at < 0)
                return new OpenAiException(400, $"'{after}' is not the id of a file.", "after").ToResult();
            all = all[(at + 1)..];
        }
        return Results.Json(new OpenAiList<OpenAiFile>(all.Take(take).ToList(), all.Count > take, f => f.Id));
    }

    public static async Task<IResult> GetAsync(string id, FineTuningDbContext db, CancellationToken ct)
    {
        if (await db.Files.FindAsync([id], ct) is { } file)
            return Results.Json(OpenAiFile.From(file));
        if (await ResultJobAsync(db, id, ct) is { } job)
            return Results.Json(ResultFile(job, (await MetricsCsvAsync(db, job, ct)).Length));
        return FileNotFound(id).ToResult();
    }

    public static async Task<IResult> ContentAsync(string id, FineTuningDbContext db, IArtifactStore artifacts, CancellationToken ct)
    {
        if (await db.Files.FindAsync([id], ct) is { } file)
        {
            var content = await artifacts.ReadVerifiedAsync(new Contracts.Common.ArtifactRef { Id = file.ArtifactId, Sha256 = file.Sha256, Length = file.Bytes, ContentType = "application/jsonl" }, ct);
            return Results.File(content, "application/octet-stream", file.FileName);
        }
        if (await ResultJobAsync(db, id, ct) is { } job)
            return Results.File(await MetricsCsvAsync(db, job, ct), "application/octet-stream", "step_metrics.csv");
        return FileNotFound(id).ToResult();
    }

    /// <summary>Deletes the file's entry; jobs that used it keep their own reference to its content, so they still run and resume.</summary>
    public static async Task<IResult> DeleteAsync(string id, FineTuningDbContext db, CancellationToken ct)
    {
        if (await ResultJobAsync(db, id, ct) is not null)
            return new OpenAiException(400, $"'{id}' is a job's results file; it lives as long as the job.", "file_id").ToResult();
        var deleted = await db.Files.Where(f => f.Id == id).ExecuteDeleteAsync(ct);
        return deleted == 0 ? FileNotFound(id).ToResult() : Results.Json(new FileDeleted(id));
    }

    private sealed record FileDeleted([property: JsonPropertyName("id")] string Id)
    {
        [JsonPropertyName("object")] public string Object => "file";
        [JsonPropertyName("deleted")] public bool Deleted => true;
    }

    /// <summary>The id of a succeeded job's metrics file.</summary>
    public static string ResultFileId(FineTuningJob job) => ResultPrefix + job.Id.ToString("N");

    private static OpenAiFile ResultFile(FineTuningJob job, long bytes) => new()
    {
        Id = ResultFileId(job),
        Bytes = bytes,
        CreatedAt = (job.FinishedAt ?? job.CreatedAt).ToUnixTimeSeconds(),
        FileName = "step_metrics.csv",
        Purpose = ResultsPurpose,
    };

    private static async Task<FineTuningJob?> ResultJobAsync(FineTuningDbContext db, string id, CancellationToken ct) =>
        id.StartsWith(ResultPrefix, StringComparison.Ordinal) && Guid.TryParseExact(id[ResultPrefix.Length..], "N", out var jobId)
            ? await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == jobId && j.Status == JobStatus.Succeeded, ct)
            : null;

    /// <summary>
    /// The hosted results file's columns: <c>step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy</c>,
    /// one row per logged step, empty where a value was not measured at that step (train_accuracy is not measured).
    /// </summary>
    public static async Task<byte[]> MetricsCsvAsync(FineTuningDbContext db, FineTuningJob job, CancellationToken ct)
    {
        var rows = await db.Metrics.AsNoTracking().Where(m => m.JobId == job.Id).OrderBy(m => m.Step).ThenBy(m => m.Id).ToListAsync(ct);
        var csv = new StringBuilder("step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n");
        static string Num(double? v) => v is { } x && double.IsFinite(x) ? x.ToString("R", CultureInfo.InvariantCulture) : "";
        foreach (var m in rows)
            csv.Append(m.Step.ToString(CultureInfo.InvariantCulture)).Append(',').Append(Num(m.TrainLoss)).Append(",,")
                .Append(Num(m.ValidLoss)).Append(',').Append(Num(m.ValidMeanTokenAccuracy)).Append('\n');
        return Encoding.UTF8.GetBytes(csv.ToString());
    }

    private static OpenAiException FileNotFound(string id) => new(404, $"No such File object: {id}", "id", "file_not_found");
}

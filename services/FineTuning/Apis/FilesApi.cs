using System.Text.Json.Serialization;
using AspireTune.FineTuning.Curation;
using AspireTune.FineTuning.Data;
using AspireTune.FineTuning.Jobs;
using AspireTune.ServiceDefaults.Artifacts;
using AspireTune.ServiceDefaults.Security;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;

namespace AspireTune.FineTuning.Apis;

/// <summary>A stored training, validation or test file.</summary>
public sealed record FileResponse(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("filename")] string FileName,
    [property: JsonPropertyName("bytes")] long Bytes,
    [property: JsonPropertyName("sha256")] string Sha256,
    [property: JsonPropertyName("artifact_id")] string ArtifactId,
    [property: JsonPropertyName("format")] string Format,
    [property: JsonPropertyName("examples")] int Examples,
    [property: JsonPropertyName("created_at")] long CreatedAt)
{
    public static FileResponse From(DataFile f) =>
        new(f.Id, "file", f.FileName, f.Bytes, f.Sha256, f.ArtifactId, f.Format, f.Examples, f.CreatedAt.ToUnixTimeSeconds());
}

/// <summary>
/// <c>/api/fine-tuning/files</c>: upload JSONL (multipart field <c>file</c>, or the raw body) and get a file id
/// and SHA-256. The file is read in full and checked line by line before anything is stored.
/// </summary>
public static class FilesApi
{
    public static IEndpointRouteBuilder MapFilesApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/fine-tuning/files").WithTags("Fine-tuning files");
        group.MapPost("/", UploadAsync).RequireAuthorization(Policies.Operator).DisableAntiforgery()
            .WithSummary("Upload a JSONL training, validation or test file (multipart field 'file', or the raw body).");
        group.MapGet("/{id}", GetAsync).RequireAuthorization(Policies.Reader);
        return app;
    }

    public static async Task<Results<Created<FileResponse>, ProblemHttpResult>> UploadAsync(
        HttpRequest request, FineTuningDbContext db, IArtifactStore artifacts, IOptions<FineTuningOptions> options, CancellationToken ct)
    {
        var limit = options.Value.MaxUploadBytes;
        if (request.ContentLength > limit)
            return TooLarge(request.ContentLength.Value, limit);
        // Raise the server's own body limit to ours; our limit is enforced below while reading.
        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
            size.MaxRequestBodySize = limit + 1024 * 1024;

        string fileName;
        Stream body;
        if (request.HasFormContentType)
        {
            var (form, error) = await FileIntake.ReadFormAsync(request, ct);
            if (form is null)
                return TypedResults.Problem(statusCode: 400, title: "The form is not valid.", detail: error);
            var file = form.Files.GetFile("file") ?? form.Files.FirstOrDefault();
            if (file is null)
                return TypedResults.Problem(statusCode: 400, title: "No file in the form.", detail: "Send the JSONL as a multipart field named 'file', or as the request body.");
            if (file.Length > limit)
                return TooLarge(file.Length, limit);
            fileName = SafeName(file.FileName);
            body = file.OpenReadStream();
        }
        else
        {
            fileName = SafeName(request.Query["filename"].FirstOrDefault() ?? "upload.jsonl");
            body = request.Body;
        }

        var intake = await FileIntake.StoreAsync(body, fileName, limit, db, artifacts, ct);
        if (intake.File is { } stored)
            return TypedResults.Created($"/api/fine-tuning/files/{stored.Id}", FileResponse.From(stored));
        return TypedResults.Problem(statusCode: intake.Status, title: intake.Title, detail: intake.Detail,
            extensions: intake.LineErrors is null ? null : new Dictionary<string, object?> { ["errors"] = intake.LineErrors.Select(e => new { line = e.Line, message = e.Message }).ToList() });
    }

    public static async Task<Results<Ok<FileResponse>, NotFound<ProblemDetails>>> GetAsync(string id, FineTuningDbContext db, CancellationToken ct) =>
        await db.Files.FindAsync([id], ct) is { } file
            ? TypedResults.Ok(FileResponse.From(file))
            : TypedResults.NotFound(new ProblemDetails { Status = 404, Title = "File not found.", Detail = $"No file has the id '{id}'." });

    private static ProblemHttpResult TooLarge(long size, long limit) =>
        TypedResults.Problem(statusCode: 413, title: "The file is too large.", detail: FileIntake.TooLargeDetail(size, limit));

    internal static string SafeName(string name)
    {
        var cleaned = Path.GetFileName(name.Replace('\\', '/'));
        return string.IsNullOrWhiteSpace(cleaned) ? "upload.jsonl" : cleaned.Length > 200 ? cleaned[..200] : cleaned;
    }
}

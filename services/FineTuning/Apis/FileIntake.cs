using AspireTune.FineTuning.Curation;
using AspireTune.FineTuning.Data;
using AspireTune.ServiceDefaults.Artifacts;

namespace AspireTune.FineTuning.Apis;

/// <summary>What storing an upload gave: the file, or the status, title and detail of why not (with line errors for bad JSONL).</summary>
public sealed record IntakeResult(DataFile? File, int Status, string Title, string Detail, IReadOnlyList<JsonlError>? LineErrors = null);

/// <summary>
/// Storing an uploaded JSONL file, shared by <c>/api/fine-tuning/files</c> and <c>/v1/files</c>: read in full
/// within the size limit, checked line by line, and only then put in the artifact store and the files table.
/// </summary>
public static class FileIntake
{
    public static string TooLargeDetail(long size, long limit, bool known = true) => known
        ? $"The upload is {size:N0} bytes; the limit is {limit:N0} bytes (FineTuning:MaxUploadBytes)."
        : $"The upload exceeds the limit of {limit:N0} bytes (FineTuning:MaxUploadBytes).";

    /// <summary>
    /// Reads a multipart form; a body that is not one (no boundary, a boundary never used, a part cut off, more parts
    /// than the form limit) comes back as the reason, for a 400, instead of an exception out of the endpoint.
    /// </summary>
    public static async Task<(IFormCollection? Form, string? Error)> ReadFormAsync(HttpRequest request, CancellationToken ct)
    {
        try
        {
            return (await request.ReadFormAsync(ct), null);
        }
        catch (Exception ex) when (ex is InvalidDataException or BadHttpRequestException or IOException or InvalidOperationException && !ct.IsCancellationRequested)
        {
            return (null, $"The multipart/form-data body could not be read: {ex.Message}");
        }
    }

    public static async Task<IntakeResult> StoreAsync(Stream body, string fileName, long limit, FineTuningDbContext db, IArtifactStore artifacts, CancellationToken ct)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = await body.ReadAsync(chunk, ct)) > 0)
        {
            if (buffer.Length + read > limit)
                return new IntakeResult(null, 413, "The file is too large.", TooLargeDetail(buffer.Length + read, limit, known: false));
            buffer.Write(chunk, 0, read);
        }
        if (buffer.Length == 0)
            return new IntakeResult(null, 400, "The file is empty.", $"'{fileName}' has no content; a training file needs at least one JSONL line.");

        var parsed = JsonlDataset.Parse(buffer.GetBuffer().AsSpan(0, (int)buffer.Length));
        if (!parsed.IsValid)
            return new IntakeResult(null, 400, "The file is not valid training JSONL.", $"'{fileName}': {parsed.Summary()}", parsed.Errors);

        buffer.Position = 0;
        var artifact = await artifacts.PutAsync(buffer, "fine-tuning-files", "data.jsonl", "application/jsonl", ct);
        var entity = new DataFile
        {
            Id = "file-" + Guid.NewGuid().ToString("N"),
            FileName = fileName,
            ArtifactId = artifact.Id,
            Sha256 = artifact.Sha256,
            Bytes = artifact.Length,
            Format = parsed.Format,
            Examples = parsed.Examples.Count,
        };
        db.Files.Add(entity);
        await db.SaveChangesAsync(ct);
        return new IntakeResult(entity, 201, "", "");
    }
}

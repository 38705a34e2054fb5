using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Serialization;
using AspireTune.Contracts.Common;
using AspireTune.FineTuning.Data;
using AspireTune.FineTuning.Jobs;
using AspireTune.FineTuning.Registry;
using AspireTune.FineTuning.Serving;
using AspireTune.ServiceDefaults.Data;
using AspireTune.ServiceDefaults.Security;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.FineTuning.Apis;

/// <summary>Body of <c>POST /api/models/import</c>.</summary>
public sealed record ImportModelRequest
{
    /// <summary>A Hugging Face model directory inside the data folder, absolute or relative to it.</summary>
    [JsonPropertyName("path")] public string? Path { get; init; }
    /// <summary>The model id to serve it under.</summary>
    [JsonPropertyName("name")] public string? Name { get; init; }
}

/// <summary>Where a model came from: base model, training data, hyperparameters, best metrics, job.</summary>
public sealed record ModelLineage
{
    [JsonPropertyName("base_model")] public string? BaseModel { get; init; }
    [JsonPropertyName("job_id")] public string? JobId { get; init; }
    [JsonPropertyName("dataset_sha256")] public string? DatasetSha256 { get; init; }
    [JsonPropertyName("hyperparameters")] public JsonElement? Hyperparameters { get; init; }
    [JsonPropertyName("best_metrics")] public IReadOnlyList<MetricValue>? BestMetrics { get; init; }
}

public sealed record ModelResponse
{
    [JsonPropertyName("id")] public required string Id { get; init; }
    [JsonPropertyName("object")] public string Object => "model";
    [JsonPropertyName("source")] public required string Source { get; init; }
    [JsonPropertyName("path")] public required string Path { get; init; }
    [JsonPropertyName("architecture")] public string? Architecture { get; init; }
    [JsonPropertyName("parameters")] public long Parameters { get; init; }
    [JsonPropertyName("has_tokenizer")] public bool HasTokenizer { get; init; }
    [JsonPropertyName("created_at")] public long CreatedAt { get; init; }
    [JsonPropertyName("lineage")] public required ModelLineage Lineage { get; init; }

    public static ModelResponse From(RegisteredModel m) => new()
    {
        Id = m.Id,
        Source = m.Source,
        Path = m.Path,
        Architecture = m.Architecture,
        Parameters = m.Parameters,
        HasTokenizer = m.HasTokenizer,
        CreatedAt = m.CreatedAt.ToUnixTimeSeconds(),
        Lineage = new ModelLineage
        {
            BaseModel = m.BaseModel,
            JobId = m.JobId is { } job ? JobIds.Format(job) : null,
            DatasetSha256 = m.DatasetSha256,
            Hyperparameters = m.Hyperparameters is null ? null : JsonSerializer.SerializeToElement(m.Hyperparameters),
            BestMetrics = m.BestMetrics,
        },
    };
}

/// <summary><c>/api/models</c>: the registry of served models (built-in, fine-tuned, imported) with lineage.</summary>
public static class RegistryApi
{
    public static IEndpointRouteBuilder MapRegistryApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/models").WithTags("Model registry");
        group.MapGet("/", ListAsync).RequireAuthorization(Policies.Reader);
        group.MapGet("/{id}", GetAsync).RequireAuthorization(Policies.Reader);
        group.MapPost("/import", ImportAsync).RequireAuthorization(Policies.Admin);
        group.MapGet("/{id}/export", ExportAsync).RequireAuthorization(Policies.Operator)
            .WithSummary("The model's Hugging Face directory as a zip (config.json, safetensors, tokenizer files).");
        group.MapDelete("/{id}", DeleteAsync).RequireAuthorization(Policies.Admin);
        return app;
    }

    public static async Task<Ok<ListResponse<ModelResponse>>> ListAsync(FineTuningDbContext db, CancellationToken ct)
    {
        var models = await db.Models.AsNoTracking().ToListAsync(ct);
        return TypedResults.Ok(new ListResponse<ModelResponse>(models.OrderBy(m => m.CreatedAt).Select(ModelResponse.From).ToList(), false));
    }

    public static async Task<Results<Ok<ModelResponse>, NotFound<ProblemDetails>>> GetAsync(string id, FineTuningDbContext db, CancellationToken ct) =>
        await db.Models.AsNoTracking().FirstOrDefaultAsync(m => m.Id == id, ct) is { } model ? TypedResults.Ok(ModelResponse.From(model)) : ModelNotFound(id);

    /// <summary>
    /// Registers a Hugging Face directory in place (it must be inside the data folder). Without tokenizer
    /// files the model imports and serves token-id prompts only.
    /// </summary>
    public static async Task<Results<Created<ModelResponse>, ValidationProblem, Conflict<ProblemDetails>>> ImportAsync(
        ImportModelRequest request, FineTuningDbContext db, DataRoot dataRoot, IModelRuntime runtime, ModelRegistry registry, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        if (!ModelNames.IsValid(request.Name))
            errors["name"] = [$"'{request.Name}' is not a valid model id: 1 to 128 letters, digits and . _ - :, starting with a letter or digit."];
        else if (request.Name!.StartsWith(ModelNames.FineTunedPrefix, StringComparison.OrdinalIgnoreCase))
            errors["name"] = [$"Names starting with '{ModelNames.FineTunedPrefix}' are reserved for models fine-tuned here; pick another name."];
        string? directory = null;
        if (string.IsNullOrWhiteSpace(request.Path))
            errors["path"] = ["The path of the model directory is required."];
        else
        {
            try
            {
                directory = dataRoot.Resolve(request.Path);
                if (!Directory.Exists(directory))
                    errors["path"] = [$"The directory '{request.Path}' does not exist in the data folder."];
                else
                    dataRoot.ConfinedFiles(directory); // no file in it may be a link out of the data folder
            }
            catch (PathOutsideDataRootException ex)
            {
                errors["path"] = [ex.Message];
            }
        }
        if (errors.Count > 0)
            return TypedResults.ValidationProblem(errors, title: "The import request is not valid.");
        if (await db.Models.AnyAsync(m => m.Id == request.Name, ct))
            return TypedResults.Conflict(new ProblemDetails { Status = 409, Title = "The model id is taken.", Detail = $"A model named '{request.Name}' is already registered; delete it first or pick another name." });

        ModelDescription description;
        try
        {
            description = runtime.Describe(directory!);
        }
        catch (ModelDirectoryException ex)
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["path"] = [ex.Message] }, title: "The directory is not a loadable model.");
        }
        var model = new RegisteredModel
        {
            Id = request.Name!,
            Source = ModelSource.Imported,
            Path = registry.Relative(directory!),
            Architecture = description.Architecture,
            Parameters = description.Parameters,
            HasTokenizer = description.HasTokenizer,
        };
        db.Models.Add(model);
        // Two imports of one name at once: the first insert wins.
        if (!await db.SaveUnlessTakenAsync(t => db.Models.AsNoTracking().AnyAsync(m => m.Id == model.Id, t), ct))
            return TypedResults.Conflict(new ProblemDetails { Status = 409, Title = "The model id is taken.", Detail = $"A model named '{model.Id}' is already registered; delete it first or pick another name." });
        return TypedResults.Created($"/api/models/{model.Id}", ModelResponse.From(model));
    }

    public static async Task<Results<FileStreamHttpResult, NotFound<ProblemDetails>, Conflict<ProblemDetails>>> ExportAsync(
        string id, FineTuningDbContext db, ModelRegistry registry, DataRoot dataRoot, CancellationToken ct)
    {
        if (await db.Models.AsNoTracking().FirstOrDefaultAsync(m => m.Id == id, ct) is not { } model)
            return ModelNotFound(id);
        // Zipped to a temporary file first, so a failure is an error status rather than a truncated download.
        var temp = Path.Combine(Path.GetTempPath(), $"aspiretune-export-{Guid.NewGuid():N}.zip");
        try
        {
            var directory = await registry.MaterializeAsync(model, ct);
            using var zip = ZipFile.Open(temp, ZipArchiveMode.Create);
            foreach (var file in dataRoot.ConfinedFiles(directory))
            {
                ct.ThrowIfCancellationRequested();
                // Each file is opened through the data folder's check, so a link swapped in meanwhile is refused too.
                await using var source = dataRoot.OpenRead(file);
                await using var target = zip.CreateEntry(Path.GetRelativePath(directory, file).Replace('\\', '/'), CompressionLevel.Fastest).Open();
                await source.CopyToAsync(target, ct);
            }
        }
        catch (PathOutsideDataRootException ex)
        {
            File.Delete(temp);
            return TypedResults.Conflict(new ProblemDetails { Status = 409, Title = "The model directory cannot be exported.", Detail = ex.Message });
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
        var stream = new FileStream(temp, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16, FileOptions.DeleteOnClose | FileOptions.Asynchronous);
        var fileName = string.Concat(id.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_')) + ".zip";
        return TypedResults.File(stream, "application/zip", fileName);
    }

    /// <summary>
    /// Removes a model from the registry and the server. Fine-tuned models' files are deleted; an imported
    /// directory belongs to whoever put it there and stays. The built-in model and models that queued or
    /// running jobs train from cannot be deleted (409).
    /// </summary>
    public static async Task<Results<NoContent, NotFound<ProblemDetails>, Conflict<ProblemDetails>>> DeleteAsync(
        string id, FineTuningDbContext db, ModelRegistry registry, ModelHost host, CancellationToken ct)
    {
        if (await db.Models.FirstOrDefaultAsync(m => m.Id == id, ct) is not { } model)
            return ModelNotFound(id);
        if (model.Source == ModelSource.BuiltIn)
            return TypedResults.Conflict(new ProblemDetails { Status = 409, Title = "The built-in model cannot be deleted.", Detail = $"'{id}' is the built-in base model (FineTuning:BuiltInModel); it is recreated on every start." });
        var users = await db.Jobs.AsNoTracking()
            .Where(j => j.BaseModel == id && (j.Status == JobStatus.ValidatingFiles || j.Status == JobStatus.Queued || j.Status == JobStatus.Running || j.Status == JobStatus.Paused))
            .Select(j => j.Id).ToListAsync(ct);
        if (users.Count > 0)
            return TypedResults.Conflict(new ProblemDetails { Status = 409, Title = "The model is in use.", Detail = $"Jobs {string.Join(", ", users.Select(JobIds.Format))} train from '{id}'; cancel them or wait until they finish." });
        db.Models.Remove(model);
        await db.SaveChangesAsync(ct);
        await host.UnloadAsync(id);
        if (model.Source == ModelSource.FineTuned && Directory.Exists(registry.Directory(model)))
            Directory.Delete(registry.Directory(model), recursive: true);
        return TypedResults.NoContent();
    }

    private static NotFound<ProblemDetails> ModelNotFound(string id) =>
        TypedResults.NotFound(new ProblemDetails { Status = 404, Title = "Model not found.", Detail = $"No model named '{id}' is registered. GET /api/models lists them." });
}

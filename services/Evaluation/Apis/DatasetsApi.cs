using AspireTune.Contracts.Common;
using AspireTune.Evaluation.Data;
using AspireTune.Evaluation.Datasets;
using AspireTune.ServiceDefaults;
using AspireTune.ServiceDefaults.Artifacts;
using AspireTune.ServiceDefaults.Security;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace AspireTune.Evaluation.Apis;

public sealed record DatasetResponse(string Sha256, string Name, int Items, long Length, ArtifactRef Artifact, DateTimeOffset CreatedAt);

public static class DatasetsApi
{
    public static RouteGroupBuilder MapDatasetsApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/evaluation/datasets").WithTags("Evaluation: datasets");
        group.MapGet("/", ListAsync).RequireAuthorization(Policies.Reader);
        group.MapGet("/{sha256}", GetAsync).RequireAuthorization(Policies.Reader);
        // The documented limit (Evaluation:MaxDatasetBytes), not the server's 30 MB default: the handler counts and answers 413.
        group.MapPost("/", UploadAsync).RequireAuthorization(Policies.Operator).DisableAntiforgery().WithMetadata(new RequestBodyLimit(null));
        return group;
    }

    public static async Task<Ok<List<DatasetResponse>>> ListAsync(EvaluationDbContext db, CancellationToken ct) =>
        TypedResults.Ok((await db.Datasets.AsNoTracking().OrderByDescending(d => d.CreatedAt).ToListAsync(ct)).Select(ToResponse).ToList());

    public static async Task<Results<Ok<DatasetResponse>, NotFound>> GetAsync(string sha256, EvaluationDbContext db, CancellationToken ct) =>
        await db.Datasets.AsNoTracking().FirstOrDefaultAsync(d => d.Sha256 == sha256, ct) is { } d ? TypedResults.Ok(ToResponse(d)) : TypedResults.NotFound();

    /// <summary>
    /// The body is the JSONL itself (<c>application/jsonl</c> or any text type): one object per line with
    /// <c>input</c>, optional <c>expected</c> and <c>metadata</c>. Every line is checked; the first 20 problems are
    /// reported by line number and nothing is stored unless all lines are valid. Stored by SHA-256, so uploading
    /// the same bytes again returns the same dataset.
    /// </summary>
    public static async Task<Results<Created<DatasetResponse>, Ok<DatasetResponse>, ValidationProblem, ProblemHttpResult>> UploadAsync(
        HttpRequest request, string name, EvaluationDbContext db, IArtifactStore artifacts, IOptions<EvaluationOptions> options, CancellationToken ct)
    {
        if (!ModelEndpointsApi.IdPattern().IsMatch(name ?? ""))
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["name"] = ["Give the dataset a name (?name=...): 1-128 letters, digits, '.', '_' or '-'."] });
        var limit = options.Value.MaxDatasetBytes;
        if (request.ContentLength > limit)
            return TypedResults.Problem($"The dataset is {request.ContentLength} bytes; the limit is {limit} (Evaluation:MaxDatasetBytes).", statusCode: StatusCodes.Status413PayloadTooLarge, title: "Dataset too large.");
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, ct)) > 0)
        {
            if (buffer.Length + read > limit)
                return TypedResults.Problem($"The dataset exceeds the limit of {limit} bytes (Evaluation:MaxDatasetBytes).", statusCode: StatusCodes.Status413PayloadTooLarge, title: "Dataset too large.");
            buffer.Write(chunk, 0, read);
        }

        var items = DatasetReader.Parse(buffer.GetBuffer().AsSpan(0, (int)buffer.Length));
        var bad = items.Where(i => i.Error is not null).ToList();
        if (items.Count == 0)
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["body"] = ["The dataset has no lines: send JSONL, one {\"input\": ..., \"expected\": ...} object per line."] }, title: "The dataset is empty.");
        if (bad.Count > 0)
            return TypedResults.ValidationProblem(bad.Take(20).ToDictionary(i => $"line {i.Line}", i => new[] { i.Error! }),
                detail: $"{bad.Count} of {items.Count} lines are not valid items; nothing was stored.", title: "The dataset has invalid lines.");

        buffer.Position = 0;
        var artifact = await artifacts.PutAsync(buffer, "evaluation-datasets", name + ".jsonl", "application/jsonl", ct);
        if (await db.Datasets.AsNoTracking().FirstOrDefaultAsync(d => d.Sha256 == artifact.Sha256, ct) is { } existing)
            return TypedResults.Ok(ToResponse(existing));
        var dataset = new DatasetEntity { Sha256 = artifact.Sha256, Name = name!, ArtifactId = artifact.Id, Length = artifact.Length, Items = items.Count, CreatedAt = DateTimeOffset.UtcNow };
        db.Datasets.Add(dataset);
        await db.SaveChangesAsync(ct);
        return TypedResults.Created($"/api/evaluation/datasets/{dataset.Sha256}", ToResponse(dataset));
    }

    internal static ArtifactRef Ref(DatasetEntity d) => new() { Id = d.ArtifactId, Sha256 = d.Sha256, Length = d.Length, ContentType = "application/jsonl" };

    private static DatasetResponse ToResponse(DatasetEntity d) => new(d.Sha256, d.Name, d.Items, d.Length, Ref(d), d.CreatedAt);
}

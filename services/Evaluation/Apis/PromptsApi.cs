using AspireTune.Contracts.Evaluation;
using AspireTune.Evaluation.Data;
using AspireTune.Evaluation.Prompts;
using AspireTune.ServiceDefaults.Security;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.Evaluation.Apis;

public sealed record PromptSummary(string Name, int LatestVersion, IReadOnlyDictionary<string, int> Labels);

public sealed record MoveLabelRequest(int Version);

public static class PromptsApi
{
    public static RouteGroupBuilder MapPromptsApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/evaluation/prompts").WithTags("Evaluation: prompts");
        group.MapGet("/", ListAsync).RequireAuthorization(Policies.Reader);
        group.MapPost("/", CreateVersionAsync).RequireAuthorization(Policies.Operator);
        group.MapGet("/{name}", VersionsAsync).RequireAuthorization(Policies.Reader);
        group.MapGet("/{name}/versions/{version:int}", GetVersionAsync).RequireAuthorization(Policies.Reader);
        group.MapPut("/{name}/labels/{label}", MoveLabelAsync).RequireAuthorization(Policies.Operator);
        return group;
    }

    public static async Task<Ok<List<PromptSummary>>> ListAsync(EvaluationDbContext db, CancellationToken ct)
    {
        var latest = await db.PromptVersions.AsNoTracking().GroupBy(p => p.Name).Select(g => new { Name = g.Key, Latest = g.Max(p => p.Version) }).ToListAsync(ct);
        var labels = await db.PromptLabels.AsNoTracking().ToListAsync(ct);
        return TypedResults.Ok(latest.OrderBy(p => p.Name, StringComparer.Ordinal)
            .Select(p => new PromptSummary(p.Name, p.Latest, labels.Where(l => l.Name == p.Name).ToDictionary(l => l.Label, l => l.Version)))
            .ToList());
    }

    /// <summary>Versions are immutable: posting a name again creates the next version.</summary>
    public static async Task<Results<Created<PromptVersionResponse>, ValidationProblem>> CreateVersionAsync(PromptVersionRequest request, EvaluationDbContext db, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        if (!ModelEndpointsApi.IdPattern().IsMatch(request.Name ?? ""))
            errors["name"] = ["The name must be 1-128 letters, digits, '.', '_' or '-' (no '@' or ':', which select versions and labels)."];
        if (string.IsNullOrWhiteSpace(request.Template))
            errors["template"] = ["The template is empty."];
        else if (PromptTemplates.Validate(request.Template, "template") is { Count: > 0 } templateProblems)
            errors["template"] = templateProblems.ToArray();
        if (request.System is not null && PromptTemplates.Validate(request.System, "system") is { Count: > 0 } systemProblems)
            errors["system"] = systemProblems.ToArray();
        var labels = (request.Labels ?? []).Distinct().ToList();
        if (labels.Any(l => l is null || !ModelEndpointsApi.IdPattern().IsMatch(l)))
            errors["labels"] = ["Labels are 1-128 letters, digits, '.', '_' or '-'."];
        if (errors.Count > 0)
            return TypedResults.ValidationProblem(errors, title: "The prompt version is not valid.");

        var next = (await db.PromptVersions.Where(p => p.Name == request.Name).MaxAsync(p => (int?)p.Version, ct) ?? 0) + 1;
        var version = new PromptVersionEntity
        {
            Name = request.Name!,
            Version = next,
            Template = request.Template!,
            System = request.System,
            Description = request.Description,
            CreatedAt = DateTimeOffset.UtcNow,
        };
        db.PromptVersions.Add(version);
        foreach (var label in labels)
            await SetLabelAsync(db, version.Name, label, next, ct);
        await db.SaveChangesAsync(ct);
        return TypedResults.Created($"/api/evaluation/prompts/{version.Name}/versions/{next}", ToResponse(version, labels));
    }

    public static async Task<Results<Ok<List<PromptVersionResponse>>, NotFound>> VersionsAsync(string name, EvaluationDbContext db, CancellationToken ct)
    {
        var versions = await db.PromptVersions.AsNoTracking().Where(p => p.Name == name).OrderBy(p => p.Version).ToListAsync(ct);
        if (versions.Count == 0)
            return TypedResults.NotFound();
        var labels = await db.PromptLabels.AsNoTracking().Where(l => l.Name == name).ToListAsync(ct);
        return TypedResults.Ok(versions.Select(v => ToResponse(v, labels.Where(l => l.Version == v.Version).Select(l => l.Label).ToList())).ToList());
    }

    public static async Task<Results<Ok<PromptVersionResponse>, NotFound>> GetVersionAsync(string name, int version, EvaluationDbContext db, CancellationToken ct)
    {
        var found = await db.PromptVersions.AsNoTracking().FirstOrDefaultAsync(p => p.Name == name && p.Version == version, ct);
        if (found is null)
            return TypedResults.NotFound();
        var labels = await db.PromptLabels.AsNoTracking().Where(l => l.Name == name && l.Version == version).Select(l => l.Label).ToListAsync(ct);
        return TypedResults.Ok(ToResponse(found, labels));
    }

    /// <summary>Points a label (e.g. <c>production</c>) at a version; runs resolve labels when they are created.</summary>
    public static async Task<Results<Ok<PromptVersionResponse>, ProblemHttpResult, ValidationProblem>> MoveLabelAsync(string name, string label, MoveLabelRequest request, EvaluationDbContext db, CancellationToken ct)
    {
        if (!ModelEndpointsApi.IdPattern().IsMatch(label))
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["label"] = ["Labels are 1-128 letters, digits, '.', '_' or '-'."] });
        var version = await db.PromptVersions.AsNoTracking().FirstOrDefaultAsync(p => p.Name == name && p.Version == request.Version, ct);
        if (version is null)
            return TypedResults.Problem($"Prompt '{name}' has no version {request.Version}.", statusCode: StatusCodes.Status404NotFound, title: "No such prompt version.");
        await SetLabelAsync(db, name, label, request.Version, ct);
        await db.SaveChangesAsync(ct);
        var labels = await db.PromptLabels.AsNoTracking().Where(l => l.Name == name && l.Version == request.Version).Select(l => l.Label).ToListAsync(ct);
        return TypedResults.Ok(ToResponse(version, labels.Append(label).Distinct().ToList()));
    }

    private static async Task SetLabelAsync(EvaluationDbContext db, string name, string label, int version, CancellationToken ct)
    {
        var existing = await db.PromptLabels.FirstOrDefaultAsync(l => l.Name == name && l.Label == label, ct);
        if (existing is null)
            db.PromptLabels.Add(new PromptLabelEntity { Name = name, Label = label, Version = version, UpdatedAt = DateTimeOffset.UtcNow });
        else
        {
            existing.Version = version;
            existing.UpdatedAt = DateTimeOffset.UtcNow;
        }
    }

    private static PromptVersionResponse ToResponse(PromptVersionEntity v, IReadOnlyList<string> labels) =>
        new()
        {
            Name = v.Name,
            Version = v.Version,
            Ref = $"{v.Name}@{v.Version}",
            Template = v.Template,
            System = v.System,
            Description = v.Description,
            Labels = labels,
            CreatedAt = v.CreatedAt,
        };
}

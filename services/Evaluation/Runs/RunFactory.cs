using System.Text.Json;
using AspireTune.Contracts.Common;
using AspireTune.Contracts.Evaluation;
using AspireTune.Evaluation.Data;
using AspireTune.Evaluation.Datasets;
using AspireTune.Evaluation.Prompts;
using AspireTune.Evaluation.Scoring;
using AspireTune.ServiceDefaults.Artifacts;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.Evaluation.Runs;

/// <summary>What a run does, fixed at creation: prompt labels are resolved to versions then.</summary>
public sealed record RunSpec
{
    public required IReadOnlyList<string> Prompts { get; init; }
    public required IReadOnlyList<string> ModelEndpoints { get; init; }
    public required IReadOnlyList<string> Scorers { get; init; }
    public int Repeats { get; init; } = 1;
    public string? RetrievalCollection { get; init; }
    public int RetrievalTopK { get; init; } = 4;
    public double? Temperature { get; init; }
    public int? MaxTokens { get; init; }
    public string? JudgeRubric { get; init; }
    public bool ConstrainToLabels { get; init; }
    public IReadOnlyList<string>? Labels { get; init; }

    /// <summary>The spec of a run refused before it started (stored as <c>{}</c>): no prompts, endpoints or scorers.</summary>
    public static readonly RunSpec None = new() { Prompts = [], ModelEndpoints = [], Scorers = [] };

    /// <summary>Whether this is <see cref="None"/>: the run never started.</summary>
    public bool IsNone => Prompts.Count == 0 && ModelEndpoints.Count == 0;

    public static RunSpec Read(string json) => json == "{}" ? None : JsonSerializer.Deserialize<RunSpec>(json, JsonSerializerOptions.Web)!;
    public string Write() => IsNone ? "{}" : JsonSerializer.Serialize(this, JsonSerializerOptions.Web);
}

/// <summary>
/// Validates a run request and stores the run (status Queued). Both entry points go through here with the
/// public command, <c>RunEvaluation</c>: the API translates its body into one.
/// </summary>
public sealed class RunFactory(EvaluationDbContext db, IArtifactStore artifacts)
{
    /// <summary>The new run, or the problems by field (nothing is stored then).</summary>
    public async Task<(RunEntity? Run, Dictionary<string, string[]> Errors)> CreateAsync(RunEvaluation request, CancellationToken ct)
    {
        var errors = new Dictionary<string, List<string>>();
        void Error(string field, string message)
        {
            if (!errors.TryGetValue(field, out var list))
                errors[field] = list = [];
            list.Add(message);
        }

        // Lists may arrive with null items (JSON or a message): named, never dereferenced.
        foreach (var (field, list) in new[] { ("prompts", request.Prompts), ("modelEndpoints", request.ModelEndpoints), ("scorers", request.Scorers), ("labels", request.Labels ?? []) })
            if (list.Any(item => item is null))
                Error(field, $"'{field}' holds a null item; every item must be a string.");
        if (errors.Count > 0)
            return (null, errors.ToDictionary(e => e.Key, e => e.Value.ToArray()));

        var prompts = new List<PromptVersionEntity>();
        if (request.Prompts.Count == 0)
            Error("prompts", "Name at least one prompt (name, name@version or name:label).");
        foreach (var reference in request.Prompts.Distinct())
        {
            var (version, problem) = await PromptResolver.ResolveAsync(db, reference, ct);
            if (version is null)
                Error("prompts", problem!);
            else
                prompts.Add(version);
        }

        if (request.ModelEndpoints.Count == 0)
            Error("modelEndpoints", "Name at least one model endpoint id.");
        var endpointIds = request.ModelEndpoints.Distinct().ToList();
        var known = await db.ModelEndpoints.Where(e => endpointIds.Contains(e.Id)).Select(e => new { e.Id, e.Kind }).ToListAsync(ct);
        foreach (var missing in endpointIds.Except(known.Select(e => e.Id)))
            Error("modelEndpoints", $"Model endpoint '{missing}' does not exist (GET /api/evaluation/models lists them).");

        foreach (var scorerSpec in request.Scorers.DefaultIfEmpty("exact"))
        {
            try
            {
                var scorer = Scorer.Parse(scorerSpec);
                foreach (var endpoint in scorer.Endpoints)
                    if (!await db.ModelEndpoints.AnyAsync(e => e.Id == endpoint, ct))
                        Error("scorers", $"Endpoint '{endpoint}' of scorer '{scorerSpec}' does not exist.");
            }
            catch (ArgumentException e)
            {
                Error("scorers", e.Message);
            }
        }

        if (request.Repeats is < 1 or > 100)
            Error("repeats", "Repeats must be between 1 and 100.");
        if (request.RetrievalTopK is < 1 or > 100)
            Error("retrievalTopK", "retrievalTopK must be between 1 and 100.");
        if (request.Temperature is < 0 or > 2)
            Error("temperature", "Temperature must be between 0 and 2.");
        if (request.MaxTokens is < 1 or > 1_000_000)
            Error("maxTokens", "maxTokens must be between 1 and 1000000.");
        foreach (var prompt in prompts.Where(p => (PromptTemplates.UsesRetrieval(p.Template) || (p.System is not null && PromptTemplates.UsesRetrieval(p.System))) && string.IsNullOrWhiteSpace(request.RetrievalCollection)))
            Error("retrievalCollection", $"Prompt '{prompt.Name}@{prompt.Version}' uses $examples or $context: name the retrieval collection to fill them from.");

        var items = 0;
        try
        {
            var content = await artifacts.ReadVerifiedAsync(request.Dataset, ct);
            var parsed = DatasetReader.Parse(content);
            items = parsed.Count;
            if (items == 0)
                Error("dataset", $"Dataset '{request.Dataset.Id}' has no items.");
            else
            {
                if (request.Labels is { } labels)
                    foreach (var problem in LabelChoices.LabelSetProblems(labels, request.Scorers.DefaultIfEmpty("exact"), request.ConstrainToLabels, parsed))
                        Error("labels", problem);
                if (request.ConstrainToLabels)
                    foreach (var problem in LabelChoices.Problems(request.Scorers.DefaultIfEmpty("exact"), known.Select(e => (e.Id, e.Kind)), content, request.Labels))
                        Error("constrainToLabels", problem);
            }
        }
        catch (Exception e) when (e is ArtifactNotFoundException or ArtifactCorruptException)
        {
            Error("dataset", e.Message);
        }

        if (errors.Count > 0)
            return (null, errors.ToDictionary(e => e.Key, e => e.Value.ToArray()));

        var spec = new RunSpec
        {
            Prompts = prompts.Select(p => $"{p.Name}@{p.Version}").ToList(),
            ModelEndpoints = endpointIds,
            Scorers = request.Scorers.DefaultIfEmpty("exact").ToList(),
            Repeats = request.Repeats,
            RetrievalCollection = string.IsNullOrWhiteSpace(request.RetrievalCollection) ? null : request.RetrievalCollection,
            RetrievalTopK = request.RetrievalTopK,
            Temperature = request.Temperature,
            MaxTokens = request.MaxTokens,
            JudgeRubric = request.JudgeRubric,
            ConstrainToLabels = request.ConstrainToLabels,
            Labels = request.Labels?.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList(),
        };
        var run = new RunEntity
        {
            Id = request.RunId,
            ExperimentId = request.ExperimentId,
            TraceParent = System.Diagnostics.Activity.Current?.Id,
            Status = RunStatus.Queued,
            Spec = spec,
            DatasetArtifactId = request.Dataset.Id,
            DatasetSha256 = request.Dataset.Sha256,
            DatasetLength = request.Dataset.Length,
            TotalCalls = prompts.Count * endpointIds.Count * items * request.Repeats,
            CreatedAt = DateTimeOffset.UtcNow,
        };
        db.Runs.Add(run);
        return (run, []);
    }

    public static ArtifactRef DatasetRef(RunEntity run) =>
        new() { Id = run.DatasetArtifactId, Sha256 = run.DatasetSha256, Length = run.DatasetLength, ContentType = "application/jsonl" };
}

/// <summary>Turns <c>name</c>, <c>name@3</c> or <c>name:production</c> into a prompt version.</summary>
public static class PromptResolver
{
    public static async Task<(PromptVersionEntity? Version, string? Problem)> ResolveAsync(EvaluationDbContext db, string reference, CancellationToken ct)
    {
        var at = reference.LastIndexOf('@');
        var colon = reference.LastIndexOf(':');
        if (at > 0)
        {
            var name = reference[..at];
            if (!int.TryParse(reference[(at + 1)..], out var version))
                return (null, $"'{reference}': the version after '@' must be a number.");
            var found = await db.PromptVersions.AsNoTracking().FirstOrDefaultAsync(p => p.Name == name && p.Version == version, ct);
            return found is null ? (null, $"Prompt '{name}' has no version {version}.") : (found, null);
        }
        if (colon > 0)
        {
            var name = reference[..colon];
            var label = reference[(colon + 1)..];
            var pointer = await db.PromptLabels.AsNoTracking().FirstOrDefaultAsync(l => l.Name == name && l.Label == label, ct);
            if (pointer is null)
                return (null, $"Prompt '{name}' has no label '{label}'.");
            var found = await db.PromptVersions.AsNoTracking().FirstOrDefaultAsync(p => p.Name == name && p.Version == pointer.Version, ct);
            return (found, found is null ? $"Label '{label}' of prompt '{name}' points at a missing version." : null);
        }
        var latest = await db.PromptVersions.AsNoTracking().Where(p => p.Name == reference).OrderByDescending(p => p.Version).FirstOrDefaultAsync(ct);
        return latest is null ? (null, $"Prompt '{reference}' does not exist.") : (latest, null);
    }
}

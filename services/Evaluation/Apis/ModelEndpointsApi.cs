using AspireTune.ServiceDefaults.Data;
using System.Text.RegularExpressions;
using AspireTune.Contracts.Evaluation;
using AspireTune.Evaluation.Data;
using AspireTune.Evaluation.Endpoints;
using AspireTune.ServiceDefaults.Security;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.Evaluation.Apis;

public static partial class ModelEndpointsApi
{
    private const string OpenAIBaseUrl = "https://api.openai.com/v1";

    /// <summary>Highest price accepted, USD per million tokens: far above any hosted model, low enough that costs stay finite.</summary>
    public const double MaxPricePerMillion = 100_000;

    public static RouteGroupBuilder MapModelEndpointsApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/evaluation/models").WithTags("Evaluation: model endpoints");
        group.MapGet("/", ListAsync).RequireAuthorization(Policies.Reader);
        group.MapGet("/{id}", GetAsync).RequireAuthorization(Policies.Reader);
        group.MapPut("/{id}", UpsertAsync).RequireAuthorization(Policies.Admin);
        group.MapPost("/", CreateAsync).RequireAuthorization(Policies.Admin);
        group.MapDelete("/{id}", DeleteAsync).RequireAuthorization(Policies.Admin);
        return group;
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    internal static partial Regex IdPattern();

    [GeneratedRegex("^[A-Za-z0-9_.:-]{1,200}$")]
    private static partial Regex ConfigKeyPattern();

    public static async Task<Ok<List<ModelEndpointResponse>>> ListAsync(EvaluationDbContext db, IConfiguration configuration, CancellationToken ct) =>
        TypedResults.Ok((await db.ModelEndpoints.AsNoTracking().OrderBy(e => e.Id).ToListAsync(ct)).Select(e => ToResponse(e, configuration)).ToList());

    public static async Task<Results<Ok<ModelEndpointResponse>, NotFound>> GetAsync(string id, EvaluationDbContext db, IConfiguration configuration, CancellationToken ct) =>
        await db.ModelEndpoints.AsNoTracking().FirstOrDefaultAsync(e => e.Id == id, ct) is { } e ? TypedResults.Ok(ToResponse(e, configuration)) : TypedResults.NotFound();

    public static async Task<Results<Created<ModelEndpointResponse>, ProblemHttpResult, ValidationProblem>> CreateAsync(ModelEndpointRequest request, HttpContext http, EvaluationDbContext db, IConfiguration configuration, CancellationToken ct)
    {
        if (Validate(request, http, configuration) is { Count: > 0 } errors)
            return TypedResults.ValidationProblem(errors, title: "The model endpoint is not valid.");
        if (await db.ModelEndpoints.AnyAsync(e => e.Id == request.Id, ct))
            return TypedResults.Problem($"Model endpoint '{request.Id}' already exists; PUT /api/evaluation/models/{request.Id} replaces it.", statusCode: StatusCodes.Status409Conflict, title: "The model endpoint exists.");
        var entity = new ModelEndpointEntity { Id = request.Id, BaseUrl = "", Model = "", CreatedAt = DateTimeOffset.UtcNow };
        Apply(entity, request);
        db.ModelEndpoints.Add(entity);
        // A concurrent POST (or PUT) of the same id may win the race.
        if (!await db.SaveUnlessTakenAsync(t => db.ModelEndpoints.AsNoTracking().AnyAsync(e => e.Id == request.Id, t), ct))
            return TypedResults.Problem($"Model endpoint '{request.Id}' already exists; PUT /api/evaluation/models/{request.Id} replaces it.", statusCode: StatusCodes.Status409Conflict, title: "The model endpoint exists.");
        return TypedResults.Created($"/api/evaluation/models/{entity.Id}", ToResponse(entity, configuration));
    }

    public static async Task<Results<Ok<ModelEndpointResponse>, ValidationProblem>> UpsertAsync(string id, ModelEndpointRequest request, HttpContext http, EvaluationDbContext db, IConfiguration configuration, CancellationToken ct)
    {
        request = request with { Id = string.IsNullOrEmpty(request.Id) ? id : request.Id };
        var errors = Validate(request, http, configuration);
        if (request.Id != id)
            errors["id"] = [$"The id in the body ('{request.Id}') differs from the one in the URL ('{id}')."];
        if (errors.Count > 0)
            return TypedResults.ValidationProblem(errors, title: "The model endpoint is not valid.");
        // Two PUTs of a new id at once both find no row; the loser's insert hits the primary key and is retried as an
        // update of the winner's row (last writer wins, as for two PUTs of an existing id).
        for (var attempt = 0; ; attempt++)
        {
            var entity = await db.ModelEndpoints.FirstOrDefaultAsync(e => e.Id == id, ct);
            if (entity is null)
                db.ModelEndpoints.Add(entity = new ModelEndpointEntity { Id = id, BaseUrl = "", Model = "", CreatedAt = DateTimeOffset.UtcNow });
            Apply(entity, request);
            try
            {
                await db.SaveChangesAsync(ct);
                return TypedResults.Ok(ToResponse(entity, configuration));
            }
            catch (DbUpdateException) when (attempt == 0 && db.Entry(entity).State == EntityState.Added)
            {
                db.ChangeTracker.Clear();
            }
        }
    }

    public static async Task<Results<NoContent, NotFound>> DeleteAsync(string id, EvaluationDbContext db, CancellationToken ct) =>
        await db.ModelEndpoints.Where(e => e.Id == id).ExecuteDeleteAsync(ct) > 0 ? TypedResults.NoContent() : TypedResults.NotFound();

    private static void Apply(ModelEndpointEntity entity, ModelEndpointRequest request)
    {
        entity.Kind = request.Kind;
        entity.BaseUrl = string.IsNullOrWhiteSpace(request.BaseUrl) ? OpenAIBaseUrl : request.BaseUrl.Trim();
        entity.Model = request.Model.Trim();
        entity.ApiKeySecret = string.IsNullOrWhiteSpace(request.ApiKeySecret) ? null : request.ApiKeySecret.Trim();
        entity.InputPricePerMillion = request.InputPricePerMillion;
        entity.OutputPricePerMillion = request.OutputPricePerMillion;
        entity.MaxConcurrency = request.MaxConcurrency;
        entity.RequestsPerMinute = request.RequestsPerMinute;
        entity.ContextLength = request.ContextLength;
        entity.UpdatedAt = DateTimeOffset.UtcNow;
    }

    internal static Dictionary<string, string[]> Validate(ModelEndpointRequest request, HttpContext? caller, IConfiguration configuration)
    {
        var errors = new Dictionary<string, string[]>();
        // Checked first and named plainly: a key in a request body ends up in proxies' and browsers' logs.
        foreach (var name in request.Extra?.Keys ?? Enumerable.Empty<string>())
        {
            var lower = name.ToLowerInvariant();
            if (lower.Contains("key") || lower.Contains("secret") || lower.Contains("token") || lower.Contains("password"))
                errors[name] = [$"'{name}' looks like a credential. Never send keys to the API: put the key in configuration (e.g. the environment variable Evaluation__Secrets__openai) and pass that configuration key's name as 'apiKeySecret' (e.g. \"Evaluation:Secrets:openai\")."];
        }
        if (request.ApiKeySecret is { Length: > 0 } secret && (!ConfigKeyPattern().IsMatch(secret) || LooksLikeKey(secret)))
            errors["apiKeySecret"] = ["'apiKeySecret' must be the NAME of a configuration key (e.g. \"Evaluation:Secrets:openai\"), not the key itself: put the key in configuration."];
        else if (!string.IsNullOrWhiteSpace(request.ApiKeySecret) && EndpointSecrets.Refusal(request.ApiKeySecret.Trim(), caller, configuration) is { } refusal)
            errors["apiKeySecret"] = [refusal];
        if (!IdPattern().IsMatch(request.Id))
            errors["id"] = ["The id must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit."];
        if (string.IsNullOrWhiteSpace(request.Model))
            errors["model"] = ["Name the model (or Azure deployment) id."];
        if (request.Kind != EndpointKind.OpenAI && string.IsNullOrWhiteSpace(request.BaseUrl))
            errors["baseUrl"] = [$"Kind {request.Kind} needs a baseUrl (the OpenAI-compatible API root, usually ending in /v1)."];
        if (!string.IsNullOrWhiteSpace(request.BaseUrl) && (request.BaseUrl.Length > 2048 || !Uri.TryCreate(request.BaseUrl, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || EndpointSecrets.CredentialInUrl(uri) is not null))
            errors["baseUrl"] = ["baseUrl must be an absolute http(s) URL of at most 2048 characters without credentials in it (no user:password@, no key in the query string)."];
        if (request.Model is { Length: > 256 })
            errors["model"] = ["The model id is at most 256 characters."];
        if (request.InputPricePerMillion is < 0 or > MaxPricePerMillion || !double.IsFinite(request.InputPricePerMillion))
            errors["inputPricePerMillion"] = [$"inputPricePerMillion must be between 0 and {MaxPricePerMillion:N0} (USD per million tokens)."];
        if (request.OutputPricePerMillion is < 0 or > MaxPricePerMillion || !double.IsFinite(request.OutputPricePerMillion))
            errors["outputPricePerMillion"] = [$"outputPricePerMillion must be between 0 and {MaxPricePerMillion:N0} (USD per million tokens)."];
        if (request.MaxConcurrency is < 1 or > 1024)
            errors["maxConcurrency"] = ["maxConcurrency must be between 1 and 1024."];
        if (request.RequestsPerMinute is < 1 or > 1_000_000)
            errors["requestsPerMinute"] = ["requestsPerMinute must be between 1 and 1,000,000 (leave it out for no limit)."];
        if (request.ContextLength is < 16 or > 100_000_000)
            errors["contextLength"] = ["contextLength must be between 16 and 100,000,000 tokens (leave it out for the model's own or a known default)."];
        return errors;
    }

    private static bool LooksLikeKey(string value) =>
        value.StartsWith("sk-", StringComparison.Ordinal) || (value.Length >= 32 && !value.Contains(':') && value.All(char.IsLetterOrDigit));

    private static ModelEndpointResponse ToResponse(ModelEndpointEntity e, IConfiguration configuration) =>
        new()
        {
            Id = e.Id,
            Kind = e.Kind,
            BaseUrl = e.BaseUrl,
            Model = e.Model,
            ApiKeySecret = e.ApiKeySecret,
            ApiKeyConfigured = !string.IsNullOrEmpty(EndpointSecrets.Resolve(configuration, e.ApiKeySecret)),
            InputPricePerMillion = e.InputPricePerMillion,
            OutputPricePerMillion = e.OutputPricePerMillion,
            MaxConcurrency = e.MaxConcurrency,
            RequestsPerMinute = e.RequestsPerMinute,
            CreatedAt = e.CreatedAt,
            UpdatedAt = e.UpdatedAt,
            ContextLength = e.ContextLength,
        };
}

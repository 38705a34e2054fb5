using AspireTune.Contracts.Retrieval;
using AspireTune.Retrieval.Search;
using AspireTune.ServiceDefaults.Security;
using Microsoft.AspNetCore.Http.HttpResults;

namespace AspireTune.Retrieval.Apis;

/// <summary>
/// <c>/api/retrieval/collections</c>: collections, ingestion, neighbour search, dynamic prompts, the kNN baseline and
/// retrieval metrics. Expected failures (unknown collection, bad input, a dependency down) are thrown as
/// <see cref="RetrievalException"/> and written as ProblemDetails by <see cref="RetrievalExceptionHandler"/>.
/// </summary>
public static class CollectionsApi
{
    public static IEndpointRouteBuilder MapCollectionsApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/retrieval/collections").WithTags("Retrieval");

        api.MapGet("/", ListCollections).RequireAuthorization(Policies.Reader);
        api.MapPost("/", CreateCollection).RequireAuthorization(Policies.Operator)
            .ProducesValidationProblem().ProducesProblem(StatusCodes.Status409Conflict);
        api.MapGet("/{collection}", GetCollection).RequireAuthorization(Policies.Reader)
            .ProducesProblem(StatusCodes.Status404NotFound);
        api.MapDelete("/{collection}", DeleteCollection).RequireAuthorization(Policies.Admin)
            .ProducesProblem(StatusCodes.Status404NotFound);

        api.MapPost("/{collection}/documents", IngestDocuments).RequireAuthorization(Policies.Operator)
            .ProducesValidationProblem().ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status422UnprocessableEntity).ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        api.MapPost("/{collection}/examples", IndexExamples).RequireAuthorization(Policies.Operator)
            .ProducesValidationProblem().ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);

        api.MapPost("/{collection}/neighbors", Neighbors).RequireAuthorization(Policies.Reader)
            .ProducesValidationProblem().ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        api.MapPost("/{collection}/prompt", Prompt).RequireAuthorization(Policies.Reader)
            .ProducesValidationProblem().ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        api.MapPost("/{collection}/classify", Classify).RequireAuthorization(Policies.Reader)
            .ProducesValidationProblem().ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status422UnprocessableEntity);
        api.MapPost("/{collection}/evaluate", Evaluate).RequireAuthorization(Policies.Reader)
            .ProducesValidationProblem().ProducesProblem(StatusCodes.Status404NotFound);
        return app;
    }

    public static async Task<Ok<IReadOnlyList<CollectionInfo>>> ListCollections(RetrievalService service, CancellationToken ct) =>
        TypedResults.Ok(await service.ListAsync(ct));

    public static async Task<Results<Created<CollectionInfo>, Ok<CollectionInfo>>> CreateCollection(CreateCollectionRequest request, RetrievalService service, CancellationToken ct)
    {
        var (info, created) = await service.CreateCollectionAsync(request, ct);
        return created ? TypedResults.Created($"/api/retrieval/collections/{info.Name}", info) : TypedResults.Ok(info);
    }

    public static async Task<Ok<CollectionInfo>> GetCollection(string collection, RetrievalService service, CancellationToken ct) =>
        TypedResults.Ok(await service.GetAsync(collection, ct));

    public static async Task<NoContent> DeleteCollection(string collection, RetrievalService service, CancellationToken ct)
    {
        await service.DeleteCollectionAsync(collection, ct);
        return TypedResults.NoContent();
    }

    public static async Task<Ok<IngestResult>> IngestDocuments(string collection, IngestDocumentsRequest request, RetrievalService service, CancellationToken ct) =>
        TypedResults.Ok(await service.IngestAsync(collection, request.Documents, request.ChunkTokens, request.ChunkOverlapTokens, null, ct));

    public static async Task<Ok<IngestResult>> IndexExamples(string collection, IndexExamplesRequest request, RetrievalService service, CancellationToken ct) =>
        TypedResults.Ok(await service.IndexExamplesAsync(collection, request.Examples, null, ct));

    public static async Task<Ok<NeighborsResponse>> Neighbors(string collection, NeighborsRequest request, RetrievalQueries queries, CancellationToken ct) =>
        TypedResults.Ok(await queries.NeighborsAsync(collection, request, ct));

    public static async Task<Ok<PromptResponse>> Prompt(string collection, PromptRequest request, RetrievalQueries queries, CancellationToken ct) =>
        TypedResults.Ok(await queries.PromptAsync(collection, request, ct));

    public static async Task<Ok<ClassifyResponse>> Classify(string collection, ClassifyRequest request, RetrievalQueries queries, CancellationToken ct) =>
        TypedResults.Ok(await queries.ClassifyAsync(collection, request, ct));

    public static async Task<Ok<EvaluateResponse>> Evaluate(string collection, EvaluateRequest request, RetrievalQueries queries, CancellationToken ct) =>
        TypedResults.Ok(await queries.EvaluateAsync(collection, request, ct));
}

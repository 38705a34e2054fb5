using AspireTune.ServiceDefaults.Messaging;

namespace AspireTune.Retrieval;

/// <summary>An expected failure with a precise message; the API maps each kind to its status code.</summary>
public abstract class RetrievalException(string message, Exception? inner = null) : Exception(message, inner)
{
    public abstract int StatusCode { get; }
    public abstract string Title { get; }
}

public sealed class CollectionNotFoundException(string collection)
    : RetrievalException($"Collection '{collection}' does not exist. List collections with GET /api/retrieval/collections.")
{
    public override int StatusCode => StatusCodes.Status404NotFound;
    public override string Title => "Unknown collection.";
}

public sealed class CollectionConflictException(string message) : RetrievalException(message)
{
    public override int StatusCode => StatusCodes.Status409Conflict;
    public override string Title => "The collection exists with other settings.";
}

public sealed class ConcurrentChangeException()
    : RetrievalException("The collection was changed by another request at the same moment, so this request was not recorded. Repeat it; unchanged documents are skipped.")
{
    public override int StatusCode => StatusCodes.Status409Conflict;
    public override string Title => "Concurrent change.";
}

/// <summary>Bad input with the member it concerns (e.g. <c>documents[2].text</c> or <c>line 14</c>).</summary>
public sealed class RetrievalValidationException(string member, string message) : RetrievalException(message), IPermanentFailure
{
    public string Member { get; } = member;
    public override int StatusCode => StatusCodes.Status400BadRequest;
    public override string Title => "One or more validation errors occurred.";
}

public sealed class DimensionMismatchException(string collection, string model, int expected, int actual)
    : RetrievalException($"Embedding model '{model}' returned {actual}-dimensional vectors, but collection '{collection}' holds {expected} dimensions. Create the collection with dimensions={actual}, or use a model that returns {expected}."), IPermanentFailure
{
    public override int StatusCode => StatusCodes.Status422UnprocessableEntity;
    public override string Title => "Embedding dimensions do not match the collection.";
}

public sealed class PayloadTooLargeException(long size, long limit, string what)
    : RetrievalException($"{what} is {size:N0} bytes; the limit is {limit:N0} bytes (Retrieval:MaxUploadBytes). Split it into smaller requests."), IPermanentFailure
{
    public override int StatusCode => StatusCodes.Status413PayloadTooLarge;
    public override string Title => "The upload is too large.";
}

/// <summary>A dependency (Qdrant, a hosted embedding API) did not answer after retries.</summary>
public sealed class DependencyUnavailableException(string message, Exception? inner = null) : RetrievalException(message, inner)
{
    public override int StatusCode => StatusCodes.Status503ServiceUnavailable;
    public override string Title => "A dependency is unavailable.";
}

/// <summary>A dependency answered with an error that retrying will not fix.</summary>
public sealed class DependencyFailedException(string message) : RetrievalException(message)
{
    public override int StatusCode => StatusCodes.Status502BadGateway;
    public override string Title => "A dependency rejected the request.";
}

using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;

namespace AspireTune.ServiceDefaults;

/// <summary>
/// Turns request-binding failures (malformed JSON, missing required members, wrong types) into a 400
/// ProblemDetails that says what was wrong and where, instead of an empty 400 or a 500.
/// </summary>
public sealed class BadRequestExceptionHandler(IProblemDetailsService problemDetails) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (exception is not BadHttpRequestException bad)
            return false;

        var detail = bad.InnerException switch
        {
            JsonException json => $"{json.Message}" + (json.Path is null ? "" : $" (JSON path {json.Path})"),
            { } inner => inner.Message,
            null => bad.Message,
        };
        httpContext.Response.StatusCode = bad.StatusCode;
        // The exception handler clears the endpoint before it runs; the feature keeps the one that failed.
        var endpoint = httpContext.Features.Get<IExceptionHandlerFeature>()?.Endpoint ?? httpContext.GetEndpoint();
        if (endpoint?.Metadata.GetMetadata<OwnErrorShape>() is { } own)
        {
            await own.Write(httpContext, bad.StatusCode, $"The request could not be read: {detail}");
            return true;
        }
        return await problemDetails.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = httpContext,
            Exception = exception,
            ProblemDetails = new ProblemDetails
            {
                Status = bad.StatusCode,
                Title = "The request could not be read.",
                Detail = detail,
            },
        });
    }
}

/// <summary>
/// A request-body limit for one endpoint, so documented limits above the server's 30 MB default hold
/// (<c>.WithMetadata(new RequestBodyLimit(bytes))</c>); a body over it is answered 413 with the limit in the detail.
/// </summary>
public sealed record RequestBodyLimit(long? MaxRequestBodySize) : Microsoft.AspNetCore.Http.Metadata.IRequestSizeLimitMetadata;

/// <summary>
/// Endpoint metadata for APIs whose error bodies have a shape of their own (the OpenAI error object on <c>/v1</c>):
/// their 4xx answers are not relabelled as ProblemDetails, and request-binding failures (a query value of the wrong
/// type, say) are written by <see cref="Write"/> (status, message) instead.
/// </summary>
public sealed record OwnErrorShape(Func<HttpContext, int, string, Task> Write);

using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Mvc;

namespace AspireTune.Retrieval;

/// <summary>Writes a <see cref="RetrievalException"/> thrown anywhere below an endpoint as its ProblemDetails.</summary>
internal sealed class RetrievalExceptionHandler(IProblemDetailsService problemDetails) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        // Two replicas writing one collection at once: the loser's write is refused whole and can simply be repeated.
        if (exception is Microsoft.EntityFrameworkCore.DbUpdateConcurrencyException)
            exception = new ConcurrentChangeException();
        if (exception is not RetrievalException error)
            return false;
        httpContext.Response.StatusCode = error.StatusCode;
        var details = error is RetrievalValidationException validation
            ? new HttpValidationProblemDetails(new Dictionary<string, string[]> { [validation.Member] = [validation.Message] })
            : new ProblemDetails();
        details.Status = error.StatusCode;
        details.Title = error.Title;
        details.Detail = error.Message;
        details.Instance = httpContext.Request.Path;
        if (error.StatusCode == StatusCodes.Status503ServiceUnavailable)
            httpContext.Response.Headers.RetryAfter = "5";
        return await problemDetails.TryWriteAsync(new ProblemDetailsContext { HttpContext = httpContext, Exception = exception, ProblemDetails = details });
    }
}

using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;
using Microsoft.AspNetCore.Http;

namespace AspireTune.ServiceDefaults.Security;

/// <summary>
/// Endpoint metadata for APIs whose clients expect their own error shape on 401 and 403 (the OpenAI error object on
/// <c>/v1</c>); without it the answer is the status with <c>WWW-Authenticate</c> and a ProblemDetails body.
/// </summary>
public interface IAuthorizationFailureBody
{
    Task WriteAsync(HttpContext context, int status);
}

/// <summary>Lets the scheme challenge (status, <c>WWW-Authenticate</c>), then writes the endpoint's own body when it has one.</summary>
internal sealed class AuthorizationFailureWriter : IAuthorizationMiddlewareResultHandler
{
    private readonly AuthorizationMiddlewareResultHandler _default = new();

    public async Task HandleAsync(RequestDelegate next, HttpContext context, AuthorizationPolicy policy, PolicyAuthorizationResult authorizeResult)
    {
        await _default.HandleAsync(next, context, policy, authorizeResult);
        if ((authorizeResult.Challenged || authorizeResult.Forbidden) && !context.Response.HasStarted
            && context.GetEndpoint()?.Metadata.GetMetadata<IAuthorizationFailureBody>() is { } body)
            await body.WriteAsync(context, context.Response.StatusCode);
    }
}

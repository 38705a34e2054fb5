using AspireTune.ServiceDefaults.OpenAi;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;
using Microsoft.AspNetCore.Http;

namespace AspireTune.ServiceDefaults.Security;

/// <summary>
/// Refusals under <c>/v1</c> in the shape OpenAI clients read: 401 with <c>WWW-Authenticate: Bearer</c> and an
/// <c>invalid_api_key</c> error object when no valid key came, 403 with <c>insufficient_permissions</c> when the
/// key's roles do not allow the call. Every other path keeps the default challenge and forbid.
/// </summary>
public sealed class OpenAiAuthorizationResultHandler : IAuthorizationMiddlewareResultHandler
{
    private readonly AuthorizationMiddlewareResultHandler _default = new();

    public async Task HandleAsync(RequestDelegate next, HttpContext context, AuthorizationPolicy policy, PolicyAuthorizationResult result)
    {
        if (!context.Request.Path.StartsWithSegments("/v1") || result.Succeeded)
        {
            await _default.HandleAsync(next, context, policy, result);
            return;
        }
        OpenAiException error;
        if (result.Challenged)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer realm=\"aspiretune\"";
            error = new OpenAiException(401, "Incorrect or missing API key. Send it as 'Authorization: Bearer <key>'.", null, "invalid_api_key");
        }
        else
            error = new OpenAiException(403, "The API key is valid but its roles do not allow this call.", null, "insufficient_permissions");
        await error.ToResult().ExecuteAsync(context);
    }
}

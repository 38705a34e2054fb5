using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;

namespace AspireTune.Retrieval.Apis;

/// <summary>
/// Refuses Retrieval request bodies over <see cref="RetrievalOptions.MaxUploadBytes"/> before they are read: a declared
/// Content-Length over the limit gets 413 at once; a chunked body is capped by the server, which fails it with 413.
/// </summary>
internal static class UploadLimit
{
    public static IApplicationBuilder UseRetrievalUploadLimit(this IApplicationBuilder app) =>
        app.UseWhen(ctx => ctx.Request.Path.StartsWithSegments("/api/retrieval"), branch => branch.Use(async (ctx, next) =>
        {
            var limit = ctx.RequestServices.GetRequiredService<IOptions<RetrievalOptions>>().Value.MaxUploadBytes;
            if (ctx.Request.ContentLength is { } length && length > limit)
            {
                var error = new PayloadTooLargeException(length, limit, "The request body");
                ctx.Response.StatusCode = error.StatusCode;
                await ctx.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
                {
                    HttpContext = ctx,
                    ProblemDetails = new ProblemDetails { Status = error.StatusCode, Title = error.Title, Detail = error.Message, Instance = ctx.Request.Path },
                });
                return;
            }
            if (ctx.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } feature)
                feature.MaxRequestBodySize = limit;
            await next(ctx);
        }));
}

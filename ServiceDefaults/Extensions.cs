using AspireTune.ServiceDefaults;
using AspireTune.ServiceDefaults.Artifacts;
using AspireTune.ServiceDefaults.Data;
using AspireTune.ServiceDefaults.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Npgsql;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using Scalar.AspNetCore;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// What every AspireTune host shares: telemetry, health, service discovery, resilience, authentication,
/// ProblemDetails, OpenAPI, the data folder and the artifact store.
/// </summary>
public static class ServiceDefaultsExtensions
{
    private const string HealthPath = "/health";
    private const string AlivePath = "/alive";
    private const string ConsoleTimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";

    public static TBuilder AddServiceDefaults<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        // Hosts compose several services (the embedded host has four): register the shared pieces once.
        if (builder.Properties.ContainsKey(typeof(ServiceDefaultsExtensions)))
            return builder;
        builder.Properties[typeof(ServiceDefaultsExtensions)] = true;

        // Per-command SQL at Information drowns what operators look for; warnings and errors still show.
        builder.Logging.AddFilter("Microsoft.EntityFrameworkCore.Database.Command", LogLevel.Warning);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        // Console lines say when, in UTC ISO 8601, so the logs of several processes can be read side by side.
        builder.Logging.AddSimpleConsole(o => { o.TimestampFormat = ConsoleTimestampFormat; o.UseUtcTimestamp = true; });
        builder.Services.Configure<JsonConsoleFormatterOptions>(o => { o.TimestampFormat = ConsoleTimestampFormat; o.UseUtcTimestamp = true; });
        builder.ConfigureOpenTelemetry();
        builder.AddDefaultHealthChecks();

        builder.Services.AddServiceDiscovery();
        builder.Services.ConfigureHttpClientDefaults(http =>
        {
            http.AddStandardResilienceHandler();
            http.AddServiceDiscovery();
        });

        // A time budget for every request (AspireTune:RequestTimeoutSeconds, default 300, 0 turns it off): when it runs out
        // the request's cancellation token fires, which the handlers pass down to their loops, and the answer is 503.
        var timeoutSeconds = builder.Configuration.GetValue("AspireTune:RequestTimeoutSeconds", 300);
        builder.Services.AddRequestTimeouts(o =>
        {
            if (timeoutSeconds > 0)
                o.DefaultPolicy = new Microsoft.AspNetCore.Http.Timeouts.RequestTimeoutPolicy { Timeout = TimeSpan.FromSeconds(timeoutSeconds), TimeoutStatusCode = StatusCodes.Status503ServiceUnavailable };
        });
        builder.Services.AddProblemDetails();
        builder.Services.AddExceptionHandler<BadRequestExceptionHandler>();
        builder.Services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        builder.Services.Configure<JsonOptions>(o =>
        {
            // Enums by name only ("kind": 7 is a 400), null refused where a member is not nullable, a repeated member
            // refused instead of the last one silently winning.
            o.SerializerOptions.Converters.Add(new System.Text.Json.Serialization.JsonStringEnumConverter(allowIntegerValues: false));
            o.SerializerOptions.RespectNullableAnnotations = true;
            o.SerializerOptions.AllowDuplicateProperties = false;
        });
        builder.Services.AddOpenApi(o => o.AddDocumentTransformer<BearerSecuritySchemeTransformer>());

        builder.AddDataRoot();
        builder.AddArtifactStore();
        builder.AddPlatformSecurity();
        return builder;
    }

    /// <summary>
    /// Configuration switch for prompt and completion text on model-call spans (<c>gen_ai.*</c>); off by default, and
    /// honoured in Development only, so production telemetry never carries user content.
    /// </summary>
    public const string SensitiveTelemetryKey = "Telemetry:SensitiveData";

    public static TBuilder ConfigureOpenTelemetry<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        // Semantic Kernel's model calls as gen_ai.* spans (model, tokens, finish reason); their text only when switched on.
        AppContext.SetSwitch("Microsoft.SemanticKernel.Experimental.GenAI.EnableOTelDiagnostics", true);
        if (builder.Environment.IsDevelopment() && builder.Configuration.GetValue<bool>(SensitiveTelemetryKey))
            AppContext.SetSwitch("Microsoft.SemanticKernel.Experimental.GenAI.EnableOTelDiagnosticsSensitive", true);

        builder.Logging.AddOpenTelemetry(logging =>
        {
            logging.IncludeFormattedMessage = true;
            logging.IncludeScopes = true;
        });

        builder.Services.AddOpenTelemetry()
            .WithMetrics(metrics => metrics
                .AddAspNetCoreInstrumentation()
                .AddHttpClientInstrumentation()
                .AddRuntimeInstrumentation()
                .AddNpgsqlInstrumentation()
                .AddMeter("AspireTune.*", "MassTransit", "Microsoft.SemanticKernel*"))
            .WithTracing(tracing => tracing
                .AddSource(builder.Environment.ApplicationName)
                .AddSource("AspireTune.*", "MassTransit", "Microsoft.SemanticKernel*", "Polly")
                .AddAspNetCoreInstrumentation(o =>
                    o.Filter = ctx => !ctx.Request.Path.StartsWithSegments(HealthPath) && !ctx.Request.Path.StartsWithSegments(AlivePath))
                .AddHttpClientInstrumentation()
                .AddNpgsql());

        // Under Aspire (or any collector) the endpoint comes from configuration; without it nothing is exported.
        if (!string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
            builder.Services.AddOpenTelemetry().UseOtlpExporter();

        return builder;
    }

    public static TBuilder AddDefaultHealthChecks<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.Services.AddHealthChecks().AddCheck("self", () => HealthCheckResult.Healthy(), ["live"]);
        return builder;
    }

    /// <summary>
    /// Middleware and endpoints every host has: ProblemDetails for errors, <c>/health</c> and <c>/alive</c>
    /// (anonymous, in every environment), the OpenAPI document and, in Development, the Scalar page.
    /// </summary>
    public static WebApplication MapDefaultEndpoints(this WebApplication app)
    {
        var properties = ((IApplicationBuilder)app).Properties;
        if (properties.ContainsKey(typeof(ServiceDefaultsExtensions).FullName!))
            return app;
        properties[typeof(ServiceDefaultsExtensions).FullName!] = true;
        PlatformSecurity.Announce(app.Services);

        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.Use((context, next) =>
        {
            // Error bodies are ProblemDetails, also where a handler returns NotFound<ProblemDetails> (written as plain
            // JSON): label them so. Endpoints with an error shape of their own (the OpenAI one on /v1) keep theirs.
            if (context.GetEndpoint()?.Metadata.GetMetadata<OwnErrorShape>() is null)
                context.Response.OnStarting(() =>
                {
                    if (context.Response.StatusCode >= 400 && context.Response.ContentType?.StartsWith("application/json", StringComparison.Ordinal) == true)
                        context.Response.ContentType = "application/problem+json; charset=utf-8";
                    return Task.CompletedTask;
                });
            if (context.GetEndpoint()?.Metadata.GetMetadata<Microsoft.AspNetCore.Http.Metadata.IRequestSizeLimitMetadata>() is { } limit)
            {
                if (limit.MaxRequestBodySize is { } max && context.Request.ContentLength > max)
                    throw new BadHttpRequestException($"The request body is {context.Request.ContentLength} bytes; this endpoint accepts at most {max}.", StatusCodes.Status413PayloadTooLarge);
                if (context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } feature)
                    feature.MaxRequestBodySize = limit.MaxRequestBodySize;
            }
            return next(context);
        });
        app.UseAuthentication();
        app.UseAuthorization();
        app.UseRequestTimeouts();

        app.MapHealthChecks(HealthPath).AllowAnonymous();
        app.MapHealthChecks(AlivePath, new HealthCheckOptions { Predicate = r => r.Tags.Contains("live") }).AllowAnonymous();

        app.MapOpenApi().RequireAuthorization(Policies.Reader);
        if (app.Environment.IsDevelopment())
            app.MapScalarApiReference().RequireAuthorization(Policies.Reader);
        return app;
    }
}

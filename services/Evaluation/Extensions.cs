using AspireTune.ServiceDefaults.Security;
using AspireTune.Evaluation.Apis;
using AspireTune.Evaluation.Data;
using AspireTune.Evaluation.Endpoints;
using AspireTune.Evaluation.Retrieval;
using AspireTune.Evaluation.Runs;
using AspireTune.ServiceDefaults.Data;
using AspireTune.ServiceDefaults.Messaging;
using AspireTune.ServiceDefaults.Work;
using MassTransit;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Options;
using Polly;

namespace AspireTune.Evaluation;

public static class EvaluationExtensions
{
    /// <summary>Registers the Evaluation service: its database, options, consumers and services.</summary>
    public static IHostApplicationBuilder AddEvaluation(this IHostApplicationBuilder builder)
    {
        builder.AddServiceDefaults();
        builder.AddServiceDatabase<EvaluationDbContext>(EvaluationDbContext.ConnectionName);
        builder.AddConsumers(bus => bus.AddConsumers(typeof(EvaluationExtensions).Assembly));

        var services = builder.Services;
        services.AddOptions<EvaluationOptions>().BindConfiguration(EvaluationOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<ModelHttpOptions>().BindConfiguration(ModelHttpOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();

        services.AddScoped<RunFactory>();
        services.AddScoped<RunExecutor>();
        services.AddWorkQueue<EvaluationDbContext, RunEntity>("evaluation", RunWorker.Definition, sp =>
        {
            var o = sp.GetRequiredService<IOptions<EvaluationOptions>>().Value;
            return new WorkQueueTiming(TimeSpan.FromSeconds(o.LeaseSeconds), TimeSpan.FromSeconds(o.LeaseSeconds) / 3, TimeSpan.FromMilliseconds(o.PollIntervalMs), o.MaxConcurrentRuns);
        });
        services.AddSingleton<ModelGateway>();
        services.AddSingleton<TokenCounter>();
        services.AddSingleton<LabelLikelihood>();
        // Hosted services stop in reverse order: the worker stops its runs before the writer drains their results.
        services.AddSingleton<ResultWriter>();
        services.AddHostedService(sp => sp.GetRequiredService<ResultWriter>());
        services.AddSingleton<ResponseCache>();
        services.AddHostedService(sp => sp.GetRequiredService<ResponseCache>());
        services.AddHostedService<RunWorker>();

        services.AddHttpClient<RetrievalClient>((sp, http) =>
            http.BaseAddress = new Uri(sp.GetRequiredService<IOptions<EvaluationOptions>>().Value.RetrievalBaseUrl.TrimEnd('/') + "/"))
            .AddServiceAccount();
        AddModelHttpClient(services);
        return builder;
    }

    /// <summary>
    /// The client of every model call. The standard handler that ServiceDefaults adds to all clients gives up after
    /// 10 s per attempt; hosted models need minutes, so it is replaced by a pipeline of our own: total timeout,
    /// retry with jitter on 408/429/5xx honouring Retry-After, a circuit breaker per endpoint host, attempt timeout.
    /// </summary>
    private static void AddModelHttpClient(IServiceCollection services)
    {
#pragma warning disable EXTEXP0001 // experimental, but the documented way to take the default handler off one client
        services.AddHttpClient(ModelGateway.ClientName, http => http.Timeout = Timeout.InfiniteTimeSpan)
            .RemoveAllResilienceHandlers()
#pragma warning restore EXTEXP0001
            .AddHttpMessageHandler(() => new GuidedChoice())
            .AddResilienceHandler(ModelGateway.ClientName, (pipeline, context) =>
            {
                var o = context.ServiceProvider.GetRequiredService<IOptions<ModelHttpOptions>>().Value;
                pipeline.AddTimeout(TimeSpan.FromSeconds(o.TotalTimeoutSeconds));
                if (o.MaxRetries > 0) // Polly requires at least one attempt; 0 means no retry strategy at all
                    pipeline.AddRetry(new HttpRetryStrategyOptions
                    {
                        MaxRetryAttempts = o.MaxRetries,
                        BackoffType = DelayBackoffType.Exponential,
                        UseJitter = true,
                        Delay = TimeSpan.FromSeconds(o.RetryBaseDelaySeconds),
                        MaxDelay = TimeSpan.FromSeconds(o.RetryMaxDelaySeconds),
                        ShouldRetryAfterHeader = true,
                    });
                pipeline.AddCircuitBreaker(new HttpCircuitBreakerStrategyOptions
                {
                    FailureRatio = o.CircuitFailureRatio,
                    SamplingDuration = TimeSpan.FromSeconds(o.CircuitSamplingSeconds),
                    MinimumThroughput = o.CircuitMinimumThroughput,
                    BreakDuration = TimeSpan.FromSeconds(o.CircuitBreakSeconds),
                });
                pipeline.AddTimeout(TimeSpan.FromSeconds(o.AttemptTimeoutSeconds));
            })
            .SelectPipelineByAuthority();
    }

    /// <summary>Maps the Evaluation service's HTTP APIs.</summary>
    public static WebApplication MapEvaluation(this WebApplication app)
    {
        app.MapModelEndpointsApi();
        app.MapPromptsApi();
        app.MapDatasetsApi();
        app.MapRunsApi();
        return app;
    }
}

using AspireTune.ServiceDefaults.Security;
using AspireTune.Comparison.Apis;
using AspireTune.Comparison.Data;
using AspireTune.Comparison.Workflow;
using AspireTune.ServiceDefaults.Data;
using AspireTune.ServiceDefaults.Messaging;
using MassTransit;

namespace AspireTune.Comparison;

public static class ComparisonExtensions
{
    /// <summary>Registers the Comparison service: its database, options, workflow, consumers and clients.</summary>
    public static IHostApplicationBuilder AddComparison(this IHostApplicationBuilder builder)
    {
        builder.AddServiceDefaults();
        builder.AddServiceDatabase<ComparisonDbContext>(ComparisonDbContext.ConnectionName);
        builder.Services.AddOptions<ComparisonOptions>().BindConfiguration(ComparisonOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddScoped<ExperimentWorkflow>();
        builder.Services.AddHttpClient<EvaluationSetupClient>().AddServiceAccount();
        builder.Services.AddHttpClient<KnnBaselineClient>().AddServiceAccount();
        builder.Services.AddHttpClient<WorkCanceller>().AddServiceAccount();
        builder.AddConsumers(bus => bus.AddConsumers(typeof(ComparisonExtensions).Assembly));
        return builder;
    }

    /// <summary>Maps the Comparison service's HTTP APIs.</summary>
    public static WebApplication MapComparison(this WebApplication app)
    {
        app.MapExperimentsApi();
        return app;
    }
}

using MassTransit;
using AspireTune.Comparison.Data;
using AspireTune.ServiceDefaults.Data;
using AspireTune.ServiceDefaults.Messaging;

namespace AspireTune.Comparison;

public static class ComparisonExtensions
{
    /// <summary>Registers the Comparison service: its database, options, consumers and services.</summary>
    public static IHostApplicationBuilder AddComparison(this IHostApplicationBuilder builder)
    {
        builder.AddServiceDefaults();
        builder.AddServiceDatabase<ComparisonDbContext>(ComparisonDbContext.ConnectionName);
        builder.AddConsumers(bus => bus.AddConsumers(typeof(ComparisonExtensions).Assembly));
        return builder;
    }

    /// <summary>Maps the Comparison service's HTTP APIs.</summary>
    public static WebApplication MapComparison(this WebApplication app)
    {
        return app;
    }
}

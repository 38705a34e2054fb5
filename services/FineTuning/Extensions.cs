using MassTransit;
using AspireTune.FineTuning.Data;
using AspireTune.ServiceDefaults.Data;
using AspireTune.ServiceDefaults.Messaging;

namespace AspireTune.FineTuning;

public static class FineTuningExtensions
{
    /// <summary>Registers the FineTuning service: its database, options, consumers and services.</summary>
    public static IHostApplicationBuilder AddFineTuning(this IHostApplicationBuilder builder)
    {
        builder.AddServiceDefaults();
        builder.AddServiceDatabase<FineTuningDbContext>(FineTuningDbContext.ConnectionName);
        builder.AddConsumers(bus => bus.AddConsumers(typeof(FineTuningExtensions).Assembly));
        return builder;
    }

    /// <summary>Maps the FineTuning service's HTTP APIs.</summary>
    public static WebApplication MapFineTuning(this WebApplication app)
    {
        return app;
    }
}

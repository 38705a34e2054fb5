using MassTransit;
using AspireTune.Retrieval.Data;
using AspireTune.ServiceDefaults.Data;
using AspireTune.ServiceDefaults.Messaging;

namespace AspireTune.Retrieval;

public static class RetrievalExtensions
{
    /// <summary>Registers the Retrieval service: its database, options, consumers and services.</summary>
    public static IHostApplicationBuilder AddRetrieval(this IHostApplicationBuilder builder)
    {
        builder.AddServiceDefaults();
        builder.AddServiceDatabase<RetrievalDbContext>(RetrievalDbContext.ConnectionName);
        builder.AddConsumers(bus => bus.AddConsumers(typeof(RetrievalExtensions).Assembly));
        return builder;
    }

    /// <summary>Maps the Retrieval service's HTTP APIs.</summary>
    public static WebApplication MapRetrieval(this WebApplication app)
    {
        return app;
    }
}

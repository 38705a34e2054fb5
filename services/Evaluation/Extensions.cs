using MassTransit;
using AspireTune.Evaluation.Data;
using AspireTune.ServiceDefaults.Data;
using AspireTune.ServiceDefaults.Messaging;

namespace AspireTune.Evaluation;

public static class EvaluationExtensions
{
    /// <summary>Registers the Evaluation service: its database, options, consumers and services.</summary>
    public static IHostApplicationBuilder AddEvaluation(this IHostApplicationBuilder builder)
    {
        builder.AddServiceDefaults();
        builder.AddServiceDatabase<EvaluationDbContext>(EvaluationDbContext.ConnectionName);
        builder.AddConsumers(bus => bus.AddConsumers(typeof(EvaluationExtensions).Assembly));
        return builder;
    }

    /// <summary>Maps the Evaluation service's HTTP APIs.</summary>
    public static WebApplication MapEvaluation(this WebApplication app)
    {
        return app;
    }
}

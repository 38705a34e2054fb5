using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace AspireTune.ServiceDefaults.Messaging;

/// <summary>
/// One bus per process, shared by every service the process hosts. Services add their consumers with
/// <see cref="AddConsumers"/>; the host then calls <see cref="AddMessaging"/> once. RabbitMQ when
/// <c>ConnectionStrings:messaging</c> is set (as Aspire injects it), the in-memory transport otherwise.
/// </summary>
public static class MessagingExtensions
{
    public const string ConnectionName = "messaging";
    private static readonly object RegistryKey = new();

    /// <summary>Adds consumers (and their definitions) to the process's bus.</summary>
    public static IHostApplicationBuilder AddConsumers(this IHostApplicationBuilder builder, Action<IBusRegistrationConfigurator> register)
    {
        Registry(builder).Add(register);
        return builder;
    }

    /// <summary>Creates the bus with every consumer added so far. Call once, after the services.</summary>
    public static IHostApplicationBuilder AddMessaging(this IHostApplicationBuilder builder)
    {
        var options = builder.Configuration.GetSection(MessagingOptions.SectionName).Get<MessagingOptions>() ?? new MessagingOptions();
        var connectionString = builder.Configuration.GetConnectionString(ConnectionName);
        var registrations = Registry(builder);

        builder.Services.AddMassTransit(bus =>
        {
            bus.SetKebabCaseEndpointNameFormatter();
            // An internal platform does not phone home: MassTransit's anonymous usage report is off unless asked for.
            bus.ConfigureUsageTelemetryOptions(o => o.Enabled = options.UsageTelemetry);
            foreach (var register in registrations)
                register(bus);

            bus.AddConfigureEndpointsCallback((context, _, endpoint) =>
            {
                // Transient failures are retried in place; what still fails goes to <queue>_error with the exception.
                endpoint.UseMessageRetry(r =>
                {
                    r.Exponential(options.RetryLimit, TimeSpan.FromMilliseconds(options.RetryMinIntervalMs),
                        TimeSpan.FromMilliseconds(options.RetryMaxIntervalMs), TimeSpan.FromMilliseconds(options.RetryMinIntervalMs));
                    r.Handle<Exception>(e => !PermanentFailures.IsPermanent(e));
                });
                // Messages a consumer publishes leave only when it succeeds, so a retry never publishes twice.
                endpoint.UseInMemoryOutbox(context);
                endpoint.UseConsumeFilter(typeof(CorrelationScopeFilter<>), context);
            });

            if (string.IsNullOrWhiteSpace(connectionString))
                bus.UsingInMemory((context, cfg) => cfg.ConfigureEndpoints(context));
            else
                bus.UsingRabbitMq((context, cfg) =>
                {
                    cfg.Host(new Uri(connectionString), h => h.ConnectionName(builder.Environment.ApplicationName));
                    cfg.ConfigureEndpoints(context);
                });
        });
        builder.Services.AddOptions<MassTransitHostOptions>().Configure(o =>
        {
            o.WaitUntilStarted = true;
            o.StartTimeout = TimeSpan.FromSeconds(options.StartTimeoutSeconds);
            o.StopTimeout = TimeSpan.FromSeconds(30);
        });
        return builder;
    }

    private static List<Action<IBusRegistrationConfigurator>> Registry(IHostApplicationBuilder builder)
    {
        if (!builder.Properties.TryGetValue(RegistryKey, out var value))
            builder.Properties[RegistryKey] = value = new List<Action<IBusRegistrationConfigurator>>();
        return (List<Action<IBusRegistrationConfigurator>>)value;
    }
}

/// <summary>Bus settings (section <c>Messaging</c>).</summary>
public sealed class MessagingOptions
{
    public const string SectionName = "Messaging";

    /// <summary>Immediate retries before a message is faulted to the error queue. Default 5.</summary>
    public int RetryLimit { get; set; } = 5;

    /// <summary>First retry delay in milliseconds (exponential up to <see cref="RetryMaxIntervalMs"/>). Default 200.</summary>
    public int RetryMinIntervalMs { get; set; } = 200;

    /// <summary>Longest retry delay in milliseconds. Default 5000.</summary>
    public int RetryMaxIntervalMs { get; set; } = 5000;

    /// <summary>Send MassTransit's anonymous usage telemetry to its vendor. Default false.</summary>
    public bool UsageTelemetry { get; set; }

    /// <summary>How long start-up waits for the broker, in seconds. Default 60.</summary>
    public int StartTimeoutSeconds { get; set; } = 60;
}

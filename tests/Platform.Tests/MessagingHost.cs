using System.Collections.Concurrent;
using System.Diagnostics;
using AspireTune.ServiceDefaults.Messaging;
using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry.Trace;

namespace AspireTune.Platform.Tests;

/// <summary>A host built the way every service builds itself (ServiceDefaults + AddMessaging), for bus tests.</summary>
internal static class MessagingHost
{
    public static async Task<WebApplication> StartAsync(string name, string? rabbitMq, Action<IBusRegistrationConfigurator> consumers,
        ICollection<Activity>? exportedActivities = null, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Production" });
        builder.WebHost.UseTestServer();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ASPIRETUNE_DATA"] = TestSupport.TestInfrastructure.TempDataFolder(name),
            ["ConnectionStrings:messaging"] = rabbitMq,
            ["Messaging:RetryLimit"] = "1",
            ["Messaging:RetryMinIntervalMs"] = "10",
        });
        builder.AddServiceDefaults();
        configure?.Invoke(builder);
        builder.AddConsumers(consumers);
        builder.AddMessaging();
        if (exportedActivities is not null)
            builder.Services.ConfigureOpenTelemetryTracerProvider(t => t.AddInMemoryExporter(exportedActivities));
        var app = builder.Build();
        app.MapDefaultEndpoints();
        await app.StartAsync(TestContext.Current.CancellationToken);
        return app;
    }
}

/// <summary>Collects messages of one type as they arrive, so a test can await them.</summary>
public sealed class Received<T> where T : class
{
    private readonly ConcurrentQueue<T> _items = new();
    private readonly SemaphoreSlim _signal = new(0);

    public IReadOnlyCollection<T> Items => _items;

    public void Add(T item)
    {
        _items.Enqueue(item);
        _signal.Release();
    }

    public async Task<T> WaitAsync(Func<T, bool> match, TimeSpan timeout)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        cts.CancelAfter(timeout);
        while (true)
        {
            if (_items.FirstOrDefault(match) is { } found)
                return found;
            await _signal.WaitAsync(cts.Token);
        }
    }
}

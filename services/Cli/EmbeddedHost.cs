using AspireTune.Comparison;
using AspireTune.Evaluation;
using AspireTune.FineTuning;
using AspireTune.Retrieval;
using AspireTune.ServiceDefaults.Messaging;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace AspireTune.Cli;

/// <summary>
/// All four services in one process: the same <c>Add&lt;Service&gt;()</c> calls as their own hosts, one bus
/// (in-memory unless <c>ConnectionStrings:messaging</c> is set), SQLite files under the data folder.
/// </summary>
public static class EmbeddedHost
{
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ApplicationName = "aspiretune" });
        builder.AddServiceDefaults();
        builder.AddEvaluation();
        builder.AddRetrieval();
        builder.AddFineTuning();
        builder.AddComparison();
        configure?.Invoke(builder);
        builder.AddMessaging();
        builder.Services.AddHostedService<OwnAddress>();

        var app = builder.Build();
        app.MapDefaultEndpoints();
        app.MapEvaluation();
        app.MapRetrieval();
        app.MapFineTuning();
        app.MapComparison();
        return app;
    }

    private static readonly string[] Services = ["evaluation", "retrieval", "finetuning", "comparison"];

    /// <summary>
    /// In one process the services reach each other over HTTP at the host's own address (the same calls they make
    /// across processes). <see cref="OwnAddress"/> writes it while the host starts, once the server is listening and
    /// before the background services read their settings; this only checks that it is <paramref name="baseUrl"/>, and
    /// writes it where it is not (configuration is not safe to change while it is being read).
    /// </summary>
    public static void PointServicesAt(WebApplication app, string baseUrl)
    {
        foreach (var service in Services)
            if (app.Configuration[$"services:{service}:http:0"] != baseUrl)
                app.Configuration[$"services:{service}:http:0"] = baseUrl;
    }

    /// <summary>
    /// Points the services at the server's first address in <c>StartedAsync</c>: after every hosted service has started
    /// (Kestrel has bound port 0 to a real port) and before <c>ApplicationStarted</c>, which the outbox dispatchers and
    /// work queues wait for before they bind their options. Written later, the change raced those reads
    /// ("Collection was modified" in the configuration binder stopped an outbox dispatcher, and accepted experiments
    /// stayed queued).
    /// </summary>
    private sealed class OwnAddress(IServer server, IConfiguration configuration) : IHostedLifecycleService
    {
        public Task StartedAsync(CancellationToken cancellationToken)
        {
            if (server.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault() is { } address)
                foreach (var service in Services)
                    configuration[$"services:{service}:http:0"] = address;
            return Task.CompletedTask;
        }

        public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}

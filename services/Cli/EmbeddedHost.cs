using AspireTune.Comparison;
using AspireTune.Evaluation;
using AspireTune.FineTuning;
using AspireTune.Retrieval;
using AspireTune.ServiceDefaults.Messaging;

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

        var app = builder.Build();
        app.MapDefaultEndpoints();
        app.MapEvaluation();
        app.MapRetrieval();
        app.MapFineTuning();
        app.MapComparison();
        return app;
    }

    /// <summary>
    /// In one process the services reach each other over HTTP at the host's own address (the same calls they
    /// make across processes). Called once the server is listening, when the port is known.
    /// </summary>
    public static void PointServicesAt(WebApplication app, string baseUrl)
    {
        foreach (var service in new[] { "evaluation", "retrieval", "finetuning", "comparison" })
            app.Configuration[$"services:{service}:http:0"] = baseUrl;
    }
}

using System.Net.Http.Json;
using System.Text.Json;
using AspireTune.Cli.Infrastructure;
using AspireTune.MockOpenAI;
using AspireTune.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace AspireTune.Cli.Tests;

/// <summary>What one command line printed and how it exited.</summary>
public sealed record CliResult(int Exit, string Stdout, string Stderr)
{
    public T Json<T>() => JsonSerializer.Deserialize<T>(Stdout, CliIo.Json) ?? throw new InvalidOperationException("stdout held null: " + Stdout);

    public override string ToString() => $"exit {Exit}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";
}

public static class Cli
{
    /// <summary>Runs <c>aspiretune ARGS</c> in this process, stdout and stderr captured, as a script would see them.</summary>
    public static async Task<CliResult> RunAsync(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var exit = await Program.InvokeAsync(args, new CliIo(stdout, stderr, interactive: false), TestContext.Current.CancellationToken);
        return new CliResult(exit, stdout.ToString(), stderr.ToString());
    }
}

/// <summary>
/// One embedded host (all four services, in-memory bus, SQLite in a temp folder) on a free loopback port, which the
/// command tests reach with --url, and a real OpenAI-compatible server on 127.0.0.1 playing two hosted models:
/// <c>large</c> answers by rules, <c>small</c> always says it is not sure.
/// </summary>
public sealed class EmbeddedHostFixture : IAsyncLifetime
{
    public WebApplication App { get; private set; } = null!;
    public string Url { get; private set; } = "";
    public HttpClient Http { get; private set; } = null!;
    public MockOpenAIServer Model { get; private set; } = null!;
    public string Data { get; } = TestInfrastructure.TempDataFolder("cli");

    public static void Rules(MockOpenAIOptions o)
    {
        // The judge's prompt starts with the rubric (and quotes the question), so its rule comes first.
        o.Rules.Add(new MockRule { Pattern = "^Rubric:", Reply = "8\nThe answer is fine." });
        o.Rules.Add(new MockRule { Pattern = "capital of France", Reply = "Paris is the capital of France." });
        o.Rules.Add(new MockRule { Pattern = @"2 \+ 2", Reply = "4" });
        o.Rules.Add(new MockRule { Pattern = "JSON", Reply = """{"answer": "yes"}""" });
        o.Models["small"] = new MockModelBehavior { Reply = "I am not sure." };
    }

    public async ValueTask InitializeAsync()
    {
        Model = await MockOpenAIServer.StartAsync(configure: Rules);
        App = AspireTune.Cli.EmbeddedHost.Build(["--urls=http://127.0.0.1:0", $"--ASPIRETUNE_DATA={Data}"]);
        await App.StartAsync();
        Url = App.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        AspireTune.Cli.EmbeddedHost.PointServicesAt(App, Url);
        Http = new HttpClient { BaseAddress = new Uri(Url), Timeout = TimeSpan.FromMinutes(2) };
    }

    /// <summary>Registers the mock model as an Evaluation endpoint (the API's own shape: id, kind, baseUrl, model).</summary>
    public async Task RegisterModelAsync(string id)
    {
        (await Http.PutAsJsonAsync($"api/evaluation/models/{id}", new AspireTune.Contracts.Evaluation.ModelEndpointRequest
        {
            Id = id, Kind = AspireTune.Contracts.Evaluation.EndpointKind.OpenAICompatible, BaseUrl = Model.BaseUrl, Model = id,
        }, CliIo.Json)).EnsureSuccessStatusCode();
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
        await Model.DisposeAsync();
    }
}

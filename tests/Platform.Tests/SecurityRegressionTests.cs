using System.Collections.Concurrent;
using System.Net;
using AspireTune.Cli;
using AspireTune.ServiceDefaults.Data;
using AspireTune.ServiceDefaults.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AspireTune.Platform.Tests;

/// <summary>Regression tests for issue 12 in what every host shares: account validation, the first log line, 401s, NUL in paths.</summary>
public sealed class SecurityRegressionTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("KeyHash", "not-a-hash", "KeyHash")]
    [InlineData("KeyHash", null, "KeyHash")]
    [InlineData("Roles:0", null, "Roles is empty")]
    [InlineData("Roles:0", "superuser", "superuser")]
    public void Start_ApiKeyAccountWithoutUsableHashOrRole_IsAStartError(string member, string? value, string named)
    {
        var settings = new Dictionary<string, string?>
        {
            ["ASPIRETUNE_DATA"] = TestSupport.TestInfrastructure.TempDataFolder(),
            ["Authentication:ApiKeys:Accounts:0:Name"] = "pipeline",
            ["Authentication:ApiKeys:Accounts:0:KeyHash"] = ApiKeyAuthenticationHandler.Hash("some-key-0123456789"),
            ["Authentication:ApiKeys:Accounts:0:Roles:0"] = "operator",
        };
        settings["Authentication:ApiKeys:Accounts:0:" + member] = value;
        var builder = WebApplication.CreateBuilder();
        builder.Configuration.AddInMemoryCollection(settings);

        var act = () => builder.AddServiceDefaults();

        act.Should().Throw<InvalidOperationException>().WithMessage($"*Accounts:0*{named}*");
    }

    [Fact]
    public async Task EmbeddedHost_OpenMode_WarningIsTheFirstLogLine()
    {
        var logs = new FirstLines();
        await using var app = EmbeddedHost.Build(["--urls=http://127.0.0.1:0", $"--ASPIRETUNE_DATA={TestSupport.TestInfrastructure.TempDataFolder("first-line")}"],
            builder => builder.Logging.AddProvider(logs));

        await app.StartAsync(Ct);
        await app.StopAsync(Ct);

        logs.Lines.Should().NotBeEmpty();
        logs.Lines.First().Should().StartWith("Warning").And.Contain("Authentication is OFF");
    }

    [Fact]
    public async Task Request_WithoutOrWithWrongKey_Is401WithWwwAuthenticateAndProblemDetails()
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Production" });
        builder.WebHost.UseTestServer();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ASPIRETUNE_DATA"] = TestSupport.TestInfrastructure.TempDataFolder(),
            ["Authentication:ApiKeys:Accounts:0:Name"] = "dashboard",
            ["Authentication:ApiKeys:Accounts:0:KeyHash"] = ApiKeyAuthenticationHandler.Hash("reader-key-0123456789"),
            ["Authentication:ApiKeys:Accounts:0:Roles:0"] = "reader",
        });
        builder.AddServiceDefaults();
        await using var app = builder.Build();
        app.MapDefaultEndpoints();
        app.MapGet("/api/probe", () => "ok").RequireAuthorization(Policies.Reader);
        await app.StartAsync(Ct);

        var anonymous = await app.GetTestClient().GetAsync("/api/probe", Ct);
        var wrong = app.GetTestClient();
        wrong.DefaultRequestHeaders.Authorization = new("Bearer", "wrong");
        var rejected = await wrong.GetAsync("/api/probe", Ct);

        anonymous.StatusCode.Should().Be(HttpStatusCode.Unauthorized);
        anonymous.Headers.WwwAuthenticate.Should().ContainSingle(h => h.Scheme == "Bearer");
        anonymous.Content.Headers.ContentType!.MediaType.Should().Be("application/problem+json");
        rejected.StatusCode.Should().Be(HttpStatusCode.Unauthorized);
        rejected.Headers.WwwAuthenticate.ToString().Should().Contain("invalid_token");
    }

    [Fact]
    public async Task Request_OverItsTimeBudget_IsCancelledAndAnswered503()
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Production" });
        builder.WebHost.UseTestServer();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ASPIRETUNE_DATA"] = TestSupport.TestInfrastructure.TempDataFolder(),
            ["AspireTune:RequestTimeoutSeconds"] = "1",
        });
        builder.AddServiceDefaults();
        await using var app = builder.Build();
        app.MapDefaultEndpoints();
        var cancelled = new TaskCompletionSource();
        app.MapGet("/api/spin", async (CancellationToken ct) =>
        {
            // A loop on request data that honours the token, as the handlers' loops do.
            while (!ct.IsCancellationRequested)
                await Task.Delay(10, CancellationToken.None);
            cancelled.SetResult();
            ct.ThrowIfCancellationRequested();
        });
        await app.StartAsync(Ct);

        var response = await app.GetTestClient().GetAsync("/api/spin", Ct).WaitAsync(TimeSpan.FromSeconds(60), Ct);

        response.StatusCode.Should().Be(HttpStatusCode.ServiceUnavailable);
        cancelled.Task.IsCompleted.Should().BeTrue();
    }

    [Fact]
    public void Resolve_NulCharacter_IsRefusedNotAnArgumentException()
    {
        var root = new DataRoot(TestSupport.TestInfrastructure.TempDataFolder());

        var act = () => root.Resolve("models/a\0b");

        act.Should().Throw<PathOutsideDataRootException>().WithMessage("*NUL*");
    }

    [Fact]
    public void ConfinedFiles_LinkOutsideDeepInside_IsRefused()
    {
        var root = new DataRoot(TestSupport.TestInfrastructure.TempDataFolder());
        var outside = TestSupport.TestInfrastructure.TempDataFolder("outside");
        File.WriteAllText(Path.Combine(outside, "secret"), "s");
        Directory.CreateDirectory(Path.Combine(root.Path, "model", "nested"));
        File.WriteAllText(Path.Combine(root.Path, "model", "config.json"), "{}");
        File.CreateSymbolicLink(Path.Combine(root.Path, "model", "nested", "weights"), Path.Combine(outside, "secret"));
        Directory.CreateSymbolicLink(Path.Combine(root.Path, "model", "loop"), Path.Combine(root.Path, "model"));

        var act = () => root.ConfinedFiles("model");

        act.Should().Throw<PathOutsideDataRootException>().WithMessage("*nested/weights*");
        File.Delete(Path.Combine(root.Path, "model", "nested", "weights"));
        root.ConfinedFiles("model").Should().ContainSingle().Which.Should().EndWith("config.json", "a link back inside is followed once, never in a loop");
    }

    [Fact]
    public void ConfinedFilesAndOpenRead_HardLinkToAFileOutside_AreRefused()
    {
        var root = new DataRoot(TestSupport.TestInfrastructure.TempDataFolder());
        var outside = Path.Combine(TestSupport.TestInfrastructure.TempDataFolder("outside"), "secret");
        File.WriteAllText(outside, "s");
        Directory.CreateDirectory(Path.Combine(root.Path, "model"));
        File.WriteAllText(Path.Combine(root.Path, "model", "config.json"), "{}");
        TestSupport.TestInfrastructure.HardLink(outside, Path.Combine(root.Path, "model", "vocab.json"));

        var list = () => root.ConfinedFiles("model");
        var open = () => root.OpenRead("model/vocab.json");

        list.Should().Throw<PathOutsideDataRootException>().WithMessage("*model/vocab.json*hard link*");
        open.Should().Throw<PathOutsideDataRootException>().WithMessage("*hard link*");
        using (root.OpenRead("model/config.json"))
        {
            // a file with one name opens as before
        }
    }

    /// <summary>The formatted log lines of a host, in order.</summary>
    private sealed class FirstLines : ILoggerProvider
    {
        private readonly ConcurrentQueue<string> _lines = new();

        public IEnumerable<string> Lines => _lines;

        public ILogger CreateLogger(string categoryName) => new Logger(_lines);

        public void Dispose()
        {
        }

        private sealed class Logger(ConcurrentQueue<string> lines) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
            public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                if (IsEnabled(logLevel))
                    lines.Enqueue($"{logLevel} {formatter(state, exception)}");
            }
        }
    }
}

using System.Net;
using System.Net.Http.Headers;
using System.Security.Claims;
using System.Text;
using AspireTune.ServiceDefaults.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace AspireTune.Platform.Tests;

public sealed class SecurityTests
{
    private const string ReaderKey = "reader-key-0123456789";
    private const string OperatorKey = "operator-key-0123456789";
    private const string JwtSigningKey = "aspiretune-test-signing-key-of-at-least-256-bits!!";

    private static async Task<WebApplication> StartHostAsync(Dictionary<string, string?> settings)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Production" });
        builder.WebHost.UseTestServer();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["ASPIRETUNE_DATA"] = TestSupport.TestInfrastructure.TempDataFolder() });
        builder.Configuration.AddInMemoryCollection(settings);
        builder.AddServiceDefaults();
        var app = builder.Build();
        app.MapDefaultEndpoints();
        app.MapGet("/api/probe/read", () => "read").RequireAuthorization(Policies.Reader);
        app.MapPost("/api/probe/submit", () => "submitted").RequireAuthorization(Policies.Operator);
        app.MapDelete("/api/probe/item", () => "deleted").RequireAuthorization(Policies.Admin);
        await app.StartAsync(TestContext.Current.CancellationToken);
        return app;
    }

    private static Dictionary<string, string?> WithKeys() => new()
    {
        ["Authentication:ApiKeys:Accounts:0:Name"] = "dashboard",
        ["Authentication:ApiKeys:Accounts:0:KeyHash"] = ApiKeyAuthenticationHandler.Hash(ReaderKey),
        ["Authentication:ApiKeys:Accounts:0:Roles:0"] = "reader",
        ["Authentication:ApiKeys:Accounts:1:Name"] = "pipeline",
        ["Authentication:ApiKeys:Accounts:1:KeyHash"] = "sha256:" + ApiKeyAuthenticationHandler.Hash(OperatorKey),
        ["Authentication:ApiKeys:Accounts:1:Roles:0"] = "operator",
    };

    private static HttpClient Client(WebApplication app, string? bearer)
    {
        var client = app.GetTestClient();
        if (bearer is not null)
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        return client;
    }

    [Fact]
    public async Task Request_WithoutCredentials_Is401()
    {
        await using var app = await StartHostAsync(WithKeys());
        var response = await Client(app, null).GetAsync("/api/probe/read", TestContext.Current.CancellationToken);
        response.StatusCode.Should().Be(HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task Request_WithWrongKey_Is401()
    {
        await using var app = await StartHostAsync(WithKeys());
        var response = await Client(app, "not-a-key").GetAsync("/api/probe/read", TestContext.Current.CancellationToken);
        response.StatusCode.Should().Be(HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task Request_WithTooLowRole_Is403()
    {
        await using var app = await StartHostAsync(WithKeys());
        var client = Client(app, ReaderKey);
        (await client.GetAsync("/api/probe/read", TestContext.Current.CancellationToken)).StatusCode.Should().Be(HttpStatusCode.OK);
        (await client.PostAsync("/api/probe/submit", null, TestContext.Current.CancellationToken)).StatusCode.Should().Be(HttpStatusCode.Forbidden);
    }

    [Fact]
    public async Task OperatorKey_CanSubmitButNotDelete()
    {
        await using var app = await StartHostAsync(WithKeys());
        var client = Client(app, OperatorKey);
        (await client.PostAsync("/api/probe/submit", null, TestContext.Current.CancellationToken)).StatusCode.Should().Be(HttpStatusCode.OK);
        (await client.GetAsync("/api/probe/read", TestContext.Current.CancellationToken)).StatusCode.Should().Be(HttpStatusCode.OK);
        (await client.DeleteAsync("/api/probe/item", TestContext.Current.CancellationToken)).StatusCode.Should().Be(HttpStatusCode.Forbidden);
    }

    [Fact]
    public async Task Jwt_FromConfiguredIssuer_GetsItsRoles()
    {
        var settings = new Dictionary<string, string?>
        {
            ["Authentication:Schemes:Bearer:ValidIssuer"] = "https://idp.example.test",
            ["Authentication:Schemes:Bearer:ValidAudiences:0"] = "aspiretune",
            ["Authentication:Schemes:Bearer:SigningKeys:0:Issuer"] = "https://idp.example.test",
            ["Authentication:Schemes:Bearer:SigningKeys:0:Value"] = Convert.ToBase64String(Encoding.UTF8.GetBytes(JwtSigningKey)),
        };
        await using var app = await StartHostAsync(settings);

        var admin = Client(app, Token("roles", "admin"));
        (await admin.DeleteAsync("/api/probe/item", TestContext.Current.CancellationToken)).StatusCode.Should().Be(HttpStatusCode.OK);
        var reader = Client(app, Token("role", "reader"));
        (await reader.PostAsync("/api/probe/submit", null, TestContext.Current.CancellationToken)).StatusCode.Should().Be(HttpStatusCode.Forbidden);
        var forged = Client(app, Token("roles", "admin", signingKey: "another-key-that-the-host-does-not-trust!!!!!"));
        (await forged.GetAsync("/api/probe/read", TestContext.Current.CancellationToken)).StatusCode.Should().Be(HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task HealthEndpoints_AreAnonymous_WhenAuthenticationIsOn()
    {
        await using var app = await StartHostAsync(WithKeys());
        var client = Client(app, null);
        (await client.GetAsync("/health", TestContext.Current.CancellationToken)).StatusCode.Should().Be(HttpStatusCode.OK);
        (await client.GetAsync("/alive", TestContext.Current.CancellationToken)).StatusCode.Should().Be(HttpStatusCode.OK);
        (await client.GetAsync("/openapi/v1.json", TestContext.Current.CancellationToken)).StatusCode.Should().Be(HttpStatusCode.Unauthorized);
    }

    [Fact]
    public void Host_BeyondLoopbackWithoutAuthentication_RefusesToStart()
    {
        var builder = WebApplication.CreateBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["urls"] = "http://0.0.0.0:5080",
            ["ASPIRETUNE_DATA"] = TestSupport.TestInfrastructure.TempDataFolder(),
        });

        var act = () => builder.AddServiceDefaults();

        act.Should().Throw<InvalidOperationException>().WithMessage("*beyond loopback*no authentication is configured*");
    }

    [Fact]
    public async Task Host_OnLoopbackWithoutAuthentication_RunsOpen()
    {
        await using var app = await StartHostAsync(new() { ["urls"] = "http://127.0.0.1:5080" });
        var response = await Client(app, null).PostAsync("/api/probe/submit", null, TestContext.Current.CancellationToken);
        response.StatusCode.Should().Be(HttpStatusCode.OK);
    }

    private static string Token(string roleClaim, string role, string signingKey = JwtSigningKey)
    {
        var credentials = new SigningCredentials(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(signingKey)), SecurityAlgorithms.HmacSha256);
        return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = "https://idp.example.test",
            Audience = "aspiretune",
            Subject = new ClaimsIdentity([new Claim("sub", "alice"), new Claim(roleClaim, role)]),
            Expires = DateTime.UtcNow.AddMinutes(5),
            SigningCredentials = credentials,
        });
    }
}

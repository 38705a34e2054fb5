using System.Net;
using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;

namespace AspireTune.ServiceDefaults.Security;

/// <summary>
/// Authentication and roles, the same for every host. JWTs go to the JwtBearer scheme, anything else
/// presented as a bearer token is looked up as an API key. A host may run without authentication only
/// when every address it listens on is loopback; otherwise it refuses to start.
/// </summary>
public static class PlatformSecurity
{
    private const string ForwardingScheme = "BearerOrApiKey";
    private const string JwtSection = "Authentication:Schemes:Bearer";

    public static IHostApplicationBuilder AddPlatformSecurity(this IHostApplicationBuilder builder)
    {
        var config = builder.Configuration;
        var jwtConfigured = IsJwtConfigured(config);
        var keysConfigured = ValidateAccounts(config) > 0;
        var enabled = jwtConfigured || keysConfigured;
        var mode = new SecurityMode(enabled, ListenAddresses(config));

        if (!enabled && !mode.LoopbackOnly)
            throw new InvalidOperationException(
                $"Refusing to start: this host listens on {string.Join(", ", mode.Addresses)}, beyond loopback, and no authentication is configured. " +
                $"Configure API keys under '{ApiKeyOptions.SectionName}:Accounts' or a JWT issuer under '{JwtSection}', or listen on 127.0.0.1 only.");

        builder.Services.AddSingleton(mode);
        builder.Services.AddOptions<ApiKeyOptions>().BindConfiguration(ApiKeyOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();

        var auth = builder.Services.AddAuthentication(ForwardingScheme)
            .AddPolicyScheme(ForwardingScheme, "JWT or API key", o => o.ForwardDefaultSelector = ctx =>
                jwtConfigured && LooksLikeJwt(ReadBearer(ctx.Request.Headers.Authorization)) ? JwtBearerDefaults.AuthenticationScheme : ApiKeyAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
        if (jwtConfigured)
            auth.AddJwtBearer(); // binds Authentication:Schemes:Bearer (Authority, ValidAudiences, SigningKeys...)
        builder.Services.AddTransient<IClaimsTransformation, RoleClaimsTransformation>();

        // Refusals under /v1 in the OpenAI error shape with WWW-Authenticate, for the OpenAI SDKs; elsewhere the default.
        builder.Services.AddSingleton<IAuthorizationMiddlewareResultHandler, OpenAiAuthorizationResultHandler>();
        builder.Services.AddAuthorizationBuilder()
            .AddPolicy(Policies.Reader, p => Require(p, enabled, Policies.ReaderRoles))
            .AddPolicy(Policies.Operator, p => Require(p, enabled, Policies.OperatorRoles))
            .AddPolicy(Policies.Admin, p => Require(p, enabled, Policies.AdminRoles));
        return builder;
    }

    /// <summary>
    /// Checks every configured API-key account; one without a name, a SHA-256 hash or a known role is a start error
    /// (a broken account must not count as "authentication configured"). Returns how many accounts there are.
    /// </summary>
    private static int ValidateAccounts(IConfiguration config)
    {
        var accounts = config.GetSection(ApiKeyOptions.SectionName).GetSection(nameof(ApiKeyOptions.Accounts)).GetChildren().ToList();
        var problems = new List<string>();
        foreach (var account in accounts)
        {
            var at = $"{ApiKeyOptions.SectionName}:{nameof(ApiKeyOptions.Accounts)}:{account.Key}";
            if (string.IsNullOrWhiteSpace(account[nameof(ApiKeyAccount.Name)]))
                problems.Add($"{at}:Name is missing");
            var hash = account[nameof(ApiKeyAccount.KeyHash)] ?? "";
            if (!System.Text.RegularExpressions.Regex.IsMatch(hash, "^(sha256:)?[0-9a-fA-F]{64}$"))
                problems.Add($"{at}:KeyHash is not the SHA-256 hex of a key (64 hex digits, optionally prefixed 'sha256:')");
            var roles = account.GetSection(nameof(ApiKeyAccount.Roles)).GetChildren().Select(r => r.Value).Where(r => !string.IsNullOrWhiteSpace(r)).ToList();
            if (roles.Count == 0 && account[nameof(ApiKeyAccount.Roles)] is { Length: > 0 } single)
                roles.Add(single);
            if (roles.Count == 0)
                problems.Add($"{at}:Roles is empty (give reader, operator or admin)");
            foreach (var role in roles.Where(r => !Policies.ReaderRoles.Contains(r?.ToLowerInvariant())))
                problems.Add($"{at}:Roles has '{role}', not one of reader, operator, admin");
        }
        if (problems.Count > 0)
            throw new InvalidOperationException("Refusing to start: the API-key accounts are not usable: " + string.Join("; ", problems) + ".");
        return accounts.Count;
    }

    private static void Require(AuthorizationPolicyBuilder policy, bool enabled, string[] roles)
    {
        if (enabled)
            policy.RequireAuthenticatedUser().RequireRole(roles);
        else
            policy.RequireAssertion(_ => true); // open mode: loopback only, announced in the first log line
    }

    private static bool IsJwtConfigured(IConfiguration config)
    {
        var jwt = config.GetSection(JwtSection);
        return !string.IsNullOrWhiteSpace(jwt["Authority"]) || !string.IsNullOrWhiteSpace(jwt["MetadataAddress"]) || jwt.GetSection("SigningKeys").GetChildren().Any();
    }

    internal static string? ReadBearer(StringValues header)
    {
        var value = header.ToString();
        return value.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) && value.Length > 7 ? value[7..].Trim() : null;
    }

    private static bool LooksLikeJwt(string? token) => token is not null && token.Count(c => c == '.') == 2 && token.StartsWith("ey", StringComparison.Ordinal);

    /// <summary>The addresses Kestrel will bind, from the same keys Kestrel reads.</summary>
    internal static IReadOnlyList<string> ListenAddresses(IConfiguration config)
    {
        var addresses = new List<string>();
        foreach (var key in new[] { "urls", "ASPNETCORE_URLS", "URLS" })
            if (config[key] is { Length: > 0 } urls)
                addresses.AddRange(urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        foreach (var key in new[] { "http_ports", "https_ports", "HTTP_PORTS", "HTTPS_PORTS", "ASPNETCORE_HTTP_PORTS", "ASPNETCORE_HTTPS_PORTS" })
            if (config[key] is { Length: > 0 } ports)
                addresses.AddRange(ports.Split(';', StringSplitOptions.RemoveEmptyEntries).Select(p => $"http://*:{p.Trim()}"));
        addresses.AddRange(config.GetSection("Kestrel:Endpoints").GetChildren().Select(e => e["Url"]).OfType<string>());
        return addresses.Count == 0 ? ["http://localhost:5000"] : addresses.Distinct().ToList();
    }

    internal static bool IsLoopback(string url)
    {
        var host = url.Split("://", 2) is [_, var rest] ? rest : url;
        host = host.Split('/', 2)[0];
        host = host.StartsWith('[') ? host[1..host.IndexOf(']')] : host.Split(':')[0];
        return host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || (IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip));
    }

    /// <summary>Whether authentication is on, and where the host listens.</summary>
    public sealed record SecurityMode(bool AuthenticationEnabled, IReadOnlyList<string> Addresses)
    {
        public bool LoopbackOnly => Addresses.All(IsLoopback);
    }

    /// <summary>
    /// Logs whether authentication is on: called by <c>MapDefaultEndpoints</c>, right after the host is built and
    /// before anything starts (MassTransit, for one, logs while its bus is built), so it is the host's first line.
    /// </summary>
    internal static void Announce(IServiceProvider services)
    {
        var mode = services.GetRequiredService<SecurityMode>();
        var logger = services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(PlatformSecurity));
        if (!mode.AuthenticationEnabled)
            logger.LogWarning("Authentication is OFF: open access, allowed because this host listens on loopback only ({Addresses}). Configure Authentication:ApiKeys or Authentication:Schemes:Bearer before exposing it.", string.Join(", ", mode.Addresses));
        else
            logger.LogInformation("Authentication is on (JWT bearer and/or API keys); roles reader, operator, admin.");
        logger.LogInformation("Data folder: {DataRoot}", services.GetRequiredService<AspireTune.ServiceDefaults.Data.DataRoot>().Path);
    }

    /// <summary>Identity providers name the role claim <c>role</c> or <c>roles</c>; map both to the standard role claim.</summary>
    private sealed class RoleClaimsTransformation : IClaimsTransformation
    {
        public Task<ClaimsPrincipal> TransformAsync(ClaimsPrincipal principal)
        {
            if (principal.Identity is not ClaimsIdentity { IsAuthenticated: true } identity)
                return Task.FromResult(principal);
            foreach (var claim in identity.Claims.Where(c => c.Type is "role" or "roles").ToList())
                if (!identity.HasClaim(ClaimTypes.Role, claim.Value))
                    identity.AddClaim(new Claim(ClaimTypes.Role, claim.Value));
            return Task.FromResult(principal);
        }
    }
}

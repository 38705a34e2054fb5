using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace AspireTune.ServiceDefaults.Security;

/// <summary>Authenticates <c>Authorization: Bearer &lt;key&gt;</c> against the hashed keys of <see cref="ApiKeyOptions"/>.</summary>
public sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    IOptionsMonitor<ApiKeyOptions> keys) : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ApiKey";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var key = PlatformSecurity.ReadBearer(Request.Headers.Authorization);
        if (key is null)
            return Task.FromResult(AuthenticateResult.NoResult());

        var hash = Hash(key);
        foreach (var account in keys.CurrentValue.Accounts)
        {
            var expected = account.KeyHash.StartsWith("sha256:", StringComparison.OrdinalIgnoreCase) ? account.KeyHash[7..] : account.KeyHash;
            if (expected.Length != 64 || !CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(expected.ToLowerInvariant()), Encoding.ASCII.GetBytes(hash)))
                continue;
            var claims = new List<Claim> { new(ClaimTypes.Name, account.Name), new("auth_method", "api_key") };
            claims.AddRange(account.Roles.Select(r => new Claim(ClaimTypes.Role, r.ToLowerInvariant())));
            var principal = new ClaimsPrincipal(new ClaimsIdentity(claims, SchemeName));
            return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(principal, SchemeName)));
        }
        // Never echo the key: only say that it did not match.
        return Task.FromResult(AuthenticateResult.Fail("The API key is not valid."));
    }

    /// <summary>RFC 6750: a 401 names the scheme, and says when the token presented was not valid.</summary>
    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var failed = (await HandleAuthenticateOnceSafeAsync()).Failure is not null;
        Response.StatusCode = StatusCodes.Status401Unauthorized;
        Response.Headers.WWWAuthenticate = failed ? "Bearer realm=\"aspiretune\", error=\"invalid_token\"" : "Bearer realm=\"aspiretune\"";
    }

    /// <summary>Lower-case hex SHA-256 of a key, the form stored in configuration.</summary>
    public static string Hash(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));
}

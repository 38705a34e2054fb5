using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using AspireTune.ServiceDefaults.Security;

namespace AspireTune.Evaluation.Endpoints;

/// <summary>
/// Which configuration keys an endpoint's <c>apiKeySecret</c> may name: keys of the <see cref="Section"/> section, and
/// the service-account key (<see cref="ServiceAccountHandler.ConfigurationKey"/>) when the caller registering the
/// endpoint presents that very key, so naming it discloses nothing the caller does not hold. Nothing else in
/// configuration (connection strings, the data folder, environment variables) can be sent to an endpoint, and the
/// answer for a refused name is the same whether or not the key exists.
/// </summary>
public static partial class EndpointSecrets
{
    /// <summary>The configuration section holding model keys, e.g. <c>Evaluation:Secrets:openai</c> (env <c>Evaluation__Secrets__openai</c>).</summary>
    public const string Section = "Evaluation:Secrets";

    [GeneratedRegex("^Evaluation:Secrets:[A-Za-z0-9_.-]{1,128}$", RegexOptions.IgnoreCase)]
    private static partial Regex SectionKey();

    [GeneratedRegex("(^|[?&])[^=&]*(key|token|secret|password|sig|signature|auth)[^=&]*=", RegexOptions.IgnoreCase)]
    private static partial Regex CredentialParameter();

    /// <summary>Whether a stored name is one that may be resolved at all (the caller check happens when it is stored).</summary>
    public static bool IsNameable(string name) => SectionKey().IsMatch(name) || IsServiceAccount(name);

    public static bool IsServiceAccount(string name) => string.Equals(name, ServiceAccountHandler.ConfigurationKey, StringComparison.OrdinalIgnoreCase);

    /// <summary>Whether a name may be stored; null when it may, else the reason (never says whether the key exists).</summary>
    public static string? Refusal(string name, HttpContext? caller, IConfiguration configuration)
    {
        if (SectionKey().IsMatch(name))
            return null;
        if (IsServiceAccount(name) && (configuration[ServiceAccountHandler.ConfigurationKey] is not { Length: > 0 } key || Presents(caller, key)))
            return null;
        return $"'apiKeySecret' must name a key of the '{Section}' configuration section (e.g. \"{Section}:openai\", set as the environment variable Evaluation__Secrets__openai); no other configuration key can be named.";
    }

    /// <summary>The key to send, read at call time; names outside the allowed ones resolve to nothing.</summary>
    public static string? Resolve(IConfiguration configuration, string? name) =>
        string.IsNullOrWhiteSpace(name) || !IsNameable(name) ? null : configuration[name];

    /// <summary>Why a base URL must not be called (credentials in it), or null.</summary>
    public static string? CredentialInUrl(Uri url) =>
        !string.IsNullOrEmpty(url.UserInfo) ? "it carries a user name or password"
        : CredentialParameter().IsMatch(url.Query) ? "its query string carries a credential"
        : null;

    private static bool Presents(HttpContext? caller, string key)
    {
        var header = caller?.Request.Headers.Authorization.ToString() ?? "";
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            return false;
        return CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(header[7..].Trim())), SHA256.HashData(Encoding.UTF8.GetBytes(key)));
    }
}

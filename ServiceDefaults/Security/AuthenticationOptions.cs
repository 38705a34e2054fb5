using System.ComponentModel.DataAnnotations;

namespace AspireTune.ServiceDefaults.Security;

/// <summary>
/// Static API keys for service accounts (section <c>Authentication:ApiKeys</c>). Enterprise users sign in
/// with JWTs configured the standard ASP.NET Core way under <c>Authentication:Schemes:Bearer</c>
/// (Authority, ValidAudiences, ...); both arrive as <c>Authorization: Bearer ...</c>.
/// </summary>
public sealed class ApiKeyOptions
{
    public const string SectionName = "Authentication:ApiKeys";

    /// <summary>The service accounts. Keys are stored only as SHA-256 hashes.</summary>
    public List<ApiKeyAccount> Accounts { get; set; } = [];
}

/// <summary>One service account.</summary>
public sealed class ApiKeyAccount
{
    /// <summary>Account name: the principal's name in logs and audit fields.</summary>
    [Required]
    public string Name { get; set; } = "";

    /// <summary>Lower-case hex SHA-256 of the key (<c>aspiretune keys hash</c> or <c>sha256sum</c> prints it).</summary>
    [Required, RegularExpression("^(sha256:)?[0-9a-fA-F]{64}$")]
    public string KeyHash { get; set; } = "";

    /// <summary>Roles: <c>reader</c>, <c>operator</c>, <c>admin</c>.</summary>
    public List<string> Roles { get; set; } = [];
}

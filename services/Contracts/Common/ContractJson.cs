using System.Text.Json;

namespace AspireTune.Contracts.Common;

/// <summary>
/// The serializer settings every shape in Contracts is written and read with: web defaults (camelCase names,
/// case-insensitive reading). Enums carry their own converter, so any caller's settings give the same JSON.
/// </summary>
public static class ContractJson
{
    /// <summary>Web defaults; shared and read-only.</summary>
    public static JsonSerializerOptions Options { get; } = CreateOptions();

    private static JsonSerializerOptions CreateOptions()
    {
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }
}

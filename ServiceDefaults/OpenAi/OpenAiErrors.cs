using System.Text.Json;
using System.Text.Json.Nodes;

using Microsoft.AspNetCore.Http;

namespace AspireTune.ServiceDefaults.OpenAi;

/// <summary>An error in the OpenAI shape <c>{"error":{"message","type","param","code"}}</c>, for every service's <c>/v1</c> routes.</summary>
public sealed class OpenAiException(int status, string message, string? param = null, string? code = null, string type = "invalid_request_error") : Exception(message)
{
    public int Status { get; } = status;
    public string? Param { get; } = param;
    public string? Code { get; } = code;
    public string Type { get; } = type;

    public IResult ToResult() => Results.Json(new JsonObject
    {
        ["error"] = new JsonObject { ["message"] = Message, ["type"] = Type, ["param"] = Param, ["code"] = Code },
    }, statusCode: Status);
}

/// <summary>Reading OpenAI request bodies by hand, so that every error, malformed JSON included, has the OpenAI error shape.</summary>
public static class OpenAiRequest
{
    public static async Task<JsonObject> ReadBodyAsync(HttpRequest request, CancellationToken ct)
    {
        try
        {
            return await JsonNode.ParseAsync(request.Body, cancellationToken: ct) as JsonObject
                ?? throw new OpenAiException(400, "The request body must be a JSON object.");
        }
        catch (JsonException ex)
        {
            throw new OpenAiException(400, $"The request body is not valid JSON: {ex.Message}");
        }
    }

    public static bool? OptionalBool(JsonObject body, string name) => body[name] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => v.GetValue<bool>(),
        JsonValue v when v.GetValueKind() == JsonValueKind.Null => null,
        _ => throw new OpenAiException(400, $"'{name}' must be true or false.", name),
    };

    public static int? OptionalInt(JsonObject body, string name, int min, int max)
    {
        if (body[name] is null || body[name]!.GetValueKind() == JsonValueKind.Null)
            return null;
        if (body[name] is not JsonValue v || !v.TryGetValue<int>(out var value))
            throw new OpenAiException(400, $"'{name}' must be an integer.", name);
        return value < min || value > max ? throw new OpenAiException(400, $"'{name}' is {value}; it must be between {min} and {max}.", name) : value;
    }

    public static double? OptionalDouble(JsonObject body, string name, double min, double max)
    {
        if (body[name] is null || body[name]!.GetValueKind() == JsonValueKind.Null)
            return null;
        if (body[name] is not JsonValue v || !v.TryGetValue<double>(out var value))
            throw new OpenAiException(400, $"'{name}' must be a number.", name);
        return value < min || value > max ? throw new OpenAiException(400, $"'{name}' is {value}; it must be between {min} and {max}.", name) : value;
    }

    public static string? OptionalString(JsonObject body, string name) => body[name] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        JsonValue v when v.GetValueKind() == JsonValueKind.Null => null,
        _ => throw new OpenAiException(400, $"'{name}' must be a string.", name),
    };
}

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

    /// <summary>Endpoint metadata: errors the framework raises (binding, size limits) also come in this shape.</summary>
    public static readonly AspireTune.ServiceDefaults.OwnErrorShape Shape = new((context, status, message) => new OpenAiException(status, message).ToResult().ExecuteAsync(context));

    public IResult ToResult() => Results.Json(new JsonObject
    {
        ["error"] = new JsonObject { ["message"] = Message, ["type"] = Type, ["param"] = Param, ["code"] = Code },
    }, statusCode: Status);
}

/// <summary>Reading OpenAI request bodies by hand, so that every error, malformed JSON included, has the OpenAI error shape.</summary>
public static class OpenAiRequest
{
    /// <summary>Largest request body, in bytes (a prompt of a few hundred thousand words fits).</summary>
    public const int MaxBodyBytes = 8 * 1024 * 1024;

    /// <summary>
    /// The body as a JSON object: at most <see cref="MaxBodyBytes"/>, valid UTF-8, no member twice, no undecodable
    /// escape; on the completion endpoints also no parameter this server does not implement.
    /// </summary>
    public static async Task<JsonObject> ReadBodyAsync(HttpRequest request, CancellationToken ct)
    {
        var bytes = await ReadBytesAsync(request, ct);
        // Checked before parsing: the JSON reader accepts invalid UTF-8 inside strings and fails only when they are read.
        if (!System.Text.Unicode.Utf8.IsValid(bytes))
            throw new OpenAiException(400, $"The request body is not valid UTF-8 (first bad byte at offset {FirstInvalidUtf8(bytes)}).");
        JsonObject body;
        try
        {
            body = JsonNode.Parse(bytes, documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false, MaxDepth = 64 }) as JsonObject
                ?? throw new OpenAiException(400, "The request body must be a JSON object.");
            Materialize(body);
        }
        catch (JsonException ex)
        {
            throw new OpenAiException(400, $"The request body is not valid JSON: {ex.Message}");
        }
        catch (InvalidOperationException)
        {
            throw new OpenAiException(400, "The request body holds a \\u escape that is not valid UTF-16 (a lone surrogate).");
        }
        if (request.Path.Value?.EndsWith("/chat/completions", StringComparison.Ordinal) == true)
            RejectUnsupported(body, ChatParameters, chat: true);
        else if (request.Path.Value?.EndsWith("/completions", StringComparison.Ordinal) == true)
            RejectUnsupported(body, CompletionParameters, chat: false);
        return body;
    }

    private static async Task<byte[]> ReadBytesAsync(HttpRequest request, CancellationToken ct)
    {
        try
        {
            if (request.ContentLength > MaxBodyBytes)
                throw new OpenAiException(413, $"The request body is {request.ContentLength} bytes; the limit is {MaxBodyBytes}.", null, "request_too_large");
            using var buffer = new MemoryStream();
            var chunk = new byte[81920];
            int read;
            while ((read = await request.Body.ReadAsync(chunk, ct)) > 0)
            {
                if (buffer.Length + read > MaxBodyBytes)
                    throw new OpenAiException(413, $"The request body exceeds the limit of {MaxBodyBytes} bytes.", null, "request_too_large");
                buffer.Write(chunk, 0, read);
            }
            return buffer.ToArray();
        }
        catch (BadHttpRequestException ex)
        {
            throw new OpenAiException(ex.StatusCode, $"The request body could not be read: {ex.Message}");
        }
    }

    /// <summary>Reads every member name and string once, so text that cannot be decoded fails here and not in a handler.</summary>
    private static void Materialize(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var (_, value) in o)
                    Materialize(value);
                break;
            case JsonArray a:
                foreach (var item in a)
                    Materialize(item);
                break;
            case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                v.GetValue<string>();
                break;
        }
    }

    private static int FirstInvalidUtf8(byte[] bytes)
    {
        var valid = 0;
        while (System.Text.Rune.DecodeFromUtf8(bytes.AsSpan(valid), out _, out var consumed) == System.Buffers.OperationStatus.Done)
            valid += consumed;
        return valid;
    }

    // What each endpoint reads, and what OpenAI clients send that changes nothing here (user, metadata, store, ...).
    private static readonly HashSet<string> ChatParameters =
    [
        "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "seed", "n", "stream", "stream_options",
        "logprobs", "top_logprobs", "logit_bias", "tools", "tool_choice", "parallel_tool_calls", "response_format", "guided_choice",
        "user", "metadata", "store", "service_tier", "frequency_penalty", "presence_penalty",
    ];

    private static readonly HashSet<string> CompletionParameters =
    [
        "model", "prompt", "max_tokens", "temperature", "top_p", "stop", "seed", "n", "best_of", "stream", "stream_options", "echo", "logprobs",
        "logit_bias", "user", "suffix", "frequency_penalty", "presence_penalty",
    ];

    /// <summary>
    /// A parameter this server does not implement gets a 400 naming it rather than being ignored; the neutral values
    /// clients send by default (zero penalties, no suffix) are accepted.
    /// </summary>
    private static void RejectUnsupported(JsonObject body, HashSet<string> known, bool chat)
    {
        foreach (var (name, value) in body)
        {
            if (!known.Contains(name))
                throw new OpenAiException(400, $"Unrecognized request argument supplied: {name}", name, "unsupported_parameter");
            var neutral = value is null || value.GetValueKind() == JsonValueKind.Null || name switch
            {
                "frequency_penalty" or "presence_penalty" => value.GetValueKind() == JsonValueKind.Number && value.GetValue<double>() == 0,
                "suffix" => value.GetValueKind() == JsonValueKind.String && value.GetValue<string>().Length == 0,
                _ => true,
            };
            if (!neutral)
                throw new OpenAiException(400, $"'{name}' is not supported by this server{(chat ? "" : " on completions")}.", name, "unsupported_parameter");
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

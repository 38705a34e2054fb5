using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace AspireTune.TestSupport;

/// <summary>
/// Reads a host's OpenAPI document and sends every operation generated bad input: malformed and non-UTF-8 bodies,
/// duplicate keys, nulls, wrong types, extreme numbers, huge strings, traversal and NUL in strings and path segments,
/// bad query values and junk headers. A request fails the sweep when it answers 5xx, does not answer within the
/// per-request timeout, answers a 4xx without a ProblemDetails (or, on <c>/v1</c>, an OpenAI error object), or
/// answers 4xx yet changes what the matching list GET returns.
/// </summary>
public sealed class BadInputSweep(HttpClient http, JsonObject document, Func<string, string, string?> seed, TimeSpan perRequest)
{
    private const int HugeChars = 1024 * 1024;
    private static readonly string[] SkippedPrefixes = ["/health", "/alive", "/openapi", "/scalar"];
    private static readonly string[] BadSegments = ["..%2F..%2F..%2Fetc%2Fpasswd", "%2E%2E", "a%00b", "%FF%FE", "-1", "99999999999999999999", "null", new string('s', 4096)];
    private static readonly string[] BadQueryValues = ["abc", "-1", "99999999999999999999", "1e308", "7", "%00", "%FF", "..%2F..%2Fetc", new string('q', 4096)];

    private readonly List<string> _failures = [];
    private readonly Dictionary<string, string> _snapshots = new(StringComparer.Ordinal);
    private int _requests;

    /// <summary>Fetches the host's OpenAPI document, sweeps every operation in it and says what it found.</summary>
    public static async Task<BadInputSweep> RunAsync(HttpClient http, string host, Func<string, string, string?> seed, CancellationToken ct)
    {
        var document = (await System.Net.Http.Json.HttpClientJsonExtensions.GetFromJsonAsync<JsonObject>(http, "openapi/v1.json", ct))!;
        var sweep = new BadInputSweep(http, document, seed, TimeSpan.FromSeconds(30));
        await sweep.RunAsync(ct);
        sweep.Summary = $"Bad-input sweep of {host}: {sweep._operations} operations, {sweep.Requests} requests, {sweep._failures.Count} failures." +
            string.Concat(sweep._failures.Take(100).Select(f => "\n  " + f));
        return sweep;
    }

    /// <summary>One line with the counts, then the first 100 failures.</summary>
    public string Summary { get; private set; } = "";

    private int _operations;

    /// <summary>Requests sent so far, list GETs for the state check included.</summary>
    public int Requests => _requests;

    public IReadOnlyList<string> Failures => _failures;

    public async Task RunAsync(CancellationToken ct)
    {
        var paths = document["paths"]!.AsObject();
        var listGets = paths.Where(p => !p.Key.Contains('{') && p.Value?["get"] is JsonObject get && !Parameters(p.Value, get).Any(q => q["required"]?.GetValue<bool>() == true))
            .Select(p => p.Key).Where(p => !Skipped(p)).ToList();
        foreach (var (template, item) in paths)
        {
            if (Skipped(template) || item is not JsonObject pathItem)
                continue;
            foreach (var (method, op) in pathItem)
            {
                if (method is "parameters" or "summary" or "description" || op is not JsonObject operation)
                    continue;
                _operations++;
                var watched = Watched(template, listGets);
                foreach (var request in Requests_(template, method.ToUpperInvariant(), pathItem, operation))
                    await SendAsync(request, watched, ct);
            }
        }
    }

    private static bool Skipped(string path) => SkippedPrefixes.Any(p => path.StartsWith(p, StringComparison.Ordinal));

    // ---------------------------------------------------------------- generation

    private sealed record Probe(string Method, string Path, byte[]? Body, string? ContentType, string What, (string Name, string Value)? Header = null);

    private IEnumerable<Probe> Requests_(string template, string method, JsonObject pathItem, JsonObject operation)
    {
        var parameters = Parameters(pathItem, operation).ToList();
        var pathParams = parameters.Where(p => p["in"]?.GetValue<string>() == "path").Select(p => p["name"]!.GetValue<string>()).ToList();
        var query = parameters.Where(p => p["in"]?.GetValue<string>() == "query").Select(p => p["name"]!.GetValue<string>()).ToList();
        // GETs and DELETEs of a real resource are valid requests (an export, a deletion): only bad segments for them.
        var useSeeds = method is not ("GET" or "DELETE");
        string Path(Func<string, string> value) => pathParams.Aggregate(template, (p, name) => p.Replace("{" + name + "}", value(name), StringComparison.Ordinal));
        string SeedOr(string name) => (useSeeds ? seed(template, name) : null) ?? "sweep-missing";
        var basePath = Path(SeedOr);

        var schema = Resolve(operation["requestBody"]?["content"]?["application/json"]?["schema"]);
        var hasBody = method is "POST" or "PUT" or "PATCH";
        var sample = (schema is null ? null : Sample(schema, 0)) as JsonObject ?? new JsonObject();
        var baseBody = Encoding.UTF8.GetBytes(sample.ToJsonString());

        foreach (var name in pathParams)
            foreach (var bad in BadSegments)
                yield return new Probe(method, Path(n => n == name ? bad : SeedOr(n)), hasBody ? baseBody : null, hasBody ? "application/json" : null, $"path {{{name}}} = {Short(bad)}");
        foreach (var name in query)
            foreach (var bad in BadQueryValues)
                yield return new Probe(method, $"{basePath}?{name}={bad}", hasBody ? baseBody : null, hasBody ? "application/json" : null, $"query {name} = {Short(bad)}");
        yield return new Probe(method, basePath, hasBody ? baseBody : null, hasBody ? "application/json" : null, "junk authorization", ("Authorization", "Bearer " + new string('k', 8192)));
        yield return new Probe(method, basePath, hasBody ? baseBody : null, hasBody ? "application/json" : null, "odd accept", ("Accept", "application/x-nothing, */*;q=0"));
        if (!hasBody)
            yield break;

        // Whole bodies that are not what any operation reads.
        foreach (var (body, what) in new (string, string)[]
        {
            ("", "empty body"), ("{", "truncated JSON"), ("null", "null body"), ("[]", "array body"), ("42", "number body"), ("\"text\"", "string body"),
            ("{\"a\":", "unterminated member"), (new string('[', 300) + new string(']', 300), "nesting 300 deep"), ("{\"\\ud800\":\"\\udfff\"}", "lone surrogates"),
        })
            yield return new Probe(method, basePath, Encoding.UTF8.GetBytes(body), "application/json", what);
        yield return new Probe(method, basePath, [.. "{\"x\":\""u8, 0xFF, 0xFE, 0xC3, 0x28, .. "\"}"u8], "application/json", "invalid UTF-8");
        yield return new Probe(method, basePath, baseBody, "text/plain", "JSON as text/plain");
        yield return new Probe(method, basePath, baseBody, null, "no content type");
        yield return new Probe(method, basePath, [0x00, 0x01, 0xFF, 0x1F, 0x8B, 0x08], "application/octet-stream", "binary body");

        foreach (var (body, contentType, what) in MultipartProbes())
            yield return new Probe(method, basePath, body, contentType, what);

        var properties = schema is null ? [] : Properties(schema).ToList();
        if (properties.Count > 0)
        {
            var first = properties[0].Name;
            var duplicate = sample.ToJsonString().TrimEnd('}') + (sample.Count > 0 ? "," : "") + $"\"{first}\":{(sample[first]?.ToJsonString() ?? "null")}}}";
            yield return new Probe(method, basePath, Encoding.UTF8.GetBytes(duplicate), "application/json", $"duplicate member {first}");
            var withBadUtf8 = Encoding.UTF8.GetBytes(With(sample, first, "\u0001MARK\u0001").ToJsonString());
            yield return new Probe(method, basePath, Replace(withBadUtf8, "\\u0001MARK\\u0001"u8.ToArray(), [0xFF, 0xFE]), "application/json", $"{first} invalid UTF-8");
            yield return new Probe(method, basePath, Encoding.UTF8.GetBytes(With(sample, "sweepUnknownMember", 1).ToJsonString()), "application/json", "unknown member");
        }
        foreach (var (name, propertySchema) in properties)
            foreach (var (value, what) in Mutations(propertySchema))
                yield return new Probe(method, basePath, Encoding.UTF8.GetBytes(With(sample, name, value).ToJsonString()), "application/json", $"{name} = {what}");
        var huge = properties.Where(p => Type(p.Schema) == "string").Select(p => p.Name).ToList();
        if (huge.Count > 0)
        {
            var all = sample.DeepClone().AsObject();
            foreach (var name in huge)
                all[name] = new string('h', HugeChars);
            yield return new Probe(method, basePath, Encoding.UTF8.GetBytes(all.ToJsonString()), "application/json", "every string 1 MB without spaces");
        }
    }

    /// <summary>
    /// Multipart bodies that uploads (<c>/v1/files</c>, datasets, training files) must refuse cleanly, sent to every
    /// operation with a body: no boundary, a boundary the body never uses, a part cut off, a file part without a
    /// name, traversal and NUL in the file name, JSONL that is not UTF-8, a bad purpose, thousands of parts.
    /// </summary>
    private static IEnumerable<(byte[] Body, string ContentType, string What)> MultipartProbes()
    {
        const string b = "sweepboundary7MA4YWxk";
        static byte[] Bytes(string text) => Encoding.UTF8.GetBytes(text.Replace("\n", "\r\n", StringComparison.Ordinal));
        static string FilePart(string fileName, string content) =>
            $"--{b}\nContent-Disposition: form-data; name=\"file\"; filename=\"{fileName}\"\nContent-Type: application/jsonl\n\n{content}\n";
        const string purpose = $"--{b}\nContent-Disposition: form-data; name=\"purpose\"\n\nfine-tune\n";
        var form = $"multipart/form-data; boundary={b}";

        yield return (Bytes(purpose + FilePart("a.jsonl", "{}") + $"--{b}--\n"), "multipart/form-data", "multipart without a boundary parameter");
        yield return (Bytes(purpose + FilePart("a.jsonl", "{}") + $"--{b}--\n"), "multipart/form-data; boundary=otherboundary", "multipart with a boundary the body never uses");
        yield return (Bytes(purpose + $"--{b}\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jsonl\"\n\n{{\"messages\":"), form, "multipart part cut off");
        yield return (Bytes($"--{b}\nContent-Disposition: form-data\n\nnameless\n--{b}--\n"), form, "multipart part without a name");
        yield return (Bytes(purpose + FilePart("../../../../etc/passwd", "{\"input\":\"a\",\"expected\":\"b\"}") + $"--{b}--\n"), form, "multipart file name with traversal");
        yield return (Bytes(purpose + FilePart("a\u0000b.jsonl", "{}") + $"--{b}--\n"), form, "multipart file name with NUL");
        yield return ([.. Bytes(purpose + $"--{b}\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jsonl\"\n\n"), .. "{\"input\":\""u8, 0xFF, 0xFE, 0xC3, 0x28, .. "\"}\r\n"u8, .. Bytes($"--{b}--\n")], form, "multipart JSONL that is not UTF-8");
        yield return (Bytes($"--{b}\nContent-Disposition: form-data; name=\"purpose\"\n\nnot-a-purpose\n" + FilePart("a.jsonl", "{}") + $"--{b}--\n"), form, "multipart with an unknown purpose");
        yield return (Bytes(purpose + $"--{b}--\n"), form, "multipart without the file");
        yield return (Bytes(string.Concat(Enumerable.Range(0, 5000).Select(i => $"--{b}\nContent-Disposition: form-data; name=\"f{i}\"\n\nx\n")) + $"--{b}--\n"), form, "multipart with 5,000 parts");
    }

    private static IEnumerable<(JsonNode? Value, string What)> Mutations(JsonObject schema)
    {
        yield return (null, "null");
        switch (Type(schema))
        {
            case "string":
                yield return (12345, "a number");
                yield return ("", "empty");
                yield return ("../../../../etc/passwd", "traversal");
                yield return ("a\u0000b", "NUL");
                yield return ("/etc/passwd", "absolute path");
                if (schema["enum"] is JsonArray)
                {
                    yield return (7, "enum as integer");
                    yield return ("7", "enum as numeric string");
                    yield return ("NotAName", "unknown enum name");
                }
                break;
            case "integer":
            case "number":
                yield return ("abc", "a string");
                yield return (1e308, "1e308");
                yield return (-1e308, "-1e308");
                yield return (2147483648L, "int32 max + 1");
                yield return (-1, "-1");
                yield return (0, "0");
                yield return (0.5, "a fraction");
                break;
            case "boolean":
                yield return ("yes", "a string");
                yield return (1, "a number");
                break;
            case "array":
                yield return (new JsonObject { ["a"] = 1 }, "an object");
                yield return (new JsonArray((JsonNode?)null), "[null]");
                yield return (new JsonArray(12345, true), "[number, bool]");
                yield return (new JsonArray([.. Enumerable.Range(0, 5000).Select(i => (JsonNode?)JsonValue.Create($"item{i}"))]), "5000 items");
                break;
            default:
                yield return ("text", "a string");
                yield return (new JsonArray(1), "an array");
                yield return (new JsonObject { ["nested"] = null, ["../x"] = "\u0000" }, "odd members");
                break;
        }
    }

    private static JsonObject With(JsonObject sample, string name, JsonNode? value)
    {
        var copy = sample.DeepClone().AsObject();
        copy[name] = value?.DeepClone();
        return copy;
    }

    private JsonNode? Sample(JsonObject schema, int depth)
    {
        if (depth > 4)
            return null;
        if (schema["enum"] is JsonArray { Count: > 0 } values)
            return values[0]?.DeepClone();
        switch (Type(schema))
        {
            case "object":
                var result = new JsonObject();
                foreach (var (name, property) in Properties(schema))
                    result[name] = Sample(property, depth + 1);
                return result;
            case "array":
                return new JsonArray();
            case "integer":
                return 1;
            case "number":
                return 1.5;
            case "boolean":
                return true;
            case "string":
                return schema["format"]?.GetValue<string>() switch
                {
                    "uuid" => "00000000-0000-0000-0000-000000000001",
                    "date-time" => "2026-01-01T00:00:00Z",
                    _ => "sweep",
                };
            default:
                return null;
        }
    }

    private IEnumerable<(string Name, JsonObject Schema)> Properties(JsonObject schema) =>
        schema["properties"] is JsonObject properties
            ? properties.Select(p => (p.Key, Resolve(p.Value) ?? new JsonObject()))
            : [];

    /// <summary>The schema's main type: the first listed that is not null ("integer" over "string" for numbers read from strings).</summary>
    private static string? Type(JsonObject schema) => schema["type"] switch
    {
        JsonValue v => v.GetValue<string>(),
        JsonArray a => a.Select(t => t!.GetValue<string>()).Where(t => t != "null").OrderBy(t => t == "string" ? 1 : 0).FirstOrDefault(),
        _ => schema["properties"] is not null ? "object" : schema["items"] is not null ? "array" : null,
    };

    private JsonObject? Resolve(JsonNode? node)
    {
        for (var depth = 0; node is JsonObject o && depth < 10; depth++)
        {
            if (o["$ref"]?.GetValue<string>() is { } reference)
                node = document["components"]?["schemas"]?[reference.Split('/')[^1]];
            else if (o["allOf"] is JsonArray { Count: 1 } only)
                node = only[0];
            else if ((o["oneOf"] ?? o["anyOf"]) is JsonArray options && options.FirstOrDefault(x => x?["type"]?.ToString() != "null") is { } option && o["properties"] is null)
                node = option;
            else
                return o;
        }
        return null;
    }

    private static IEnumerable<JsonObject> Parameters(JsonNode pathItem, JsonNode operation) =>
        new[] { pathItem["parameters"], operation["parameters"] }.OfType<JsonArray>().SelectMany(a => a).OfType<JsonObject>();

    private static byte[] Replace(byte[] source, byte[] marker, byte[] with)
    {
        var at = source.AsSpan().IndexOf(marker);
        return at < 0 ? source : [.. source.AsSpan(0, at), .. with, .. source.AsSpan(at + marker.Length)];
    }

    private static string Short(string value) => value.Length > 40 ? $"{value[..20]}...({value.Length} chars)" : value;

    // ---------------------------------------------------------------- sending and checking

    /// <summary>The list GETs that show what an operation could change: those sharing the longest path prefix with it.</summary>
    private static List<string> Watched(string template, List<string> listGets)
    {
        static string[] Segments(string p) => p.Trim('/').Split('/');
        var target = Segments(template);
        int Shared(string get) => Segments(get).Zip(target).TakeWhile(x => x.First == x.Second).Count();
        var best = listGets.Select(Shared).DefaultIfEmpty(0).Max();
        return best < 2 ? [] : listGets.Where(g => Shared(g) == best).ToList();
    }

    private async Task SendAsync(Probe probe, List<string> watched, CancellationToken ct)
    {
        foreach (var get in watched.Where(g => !_snapshots.ContainsKey(g)))
            _snapshots[get] = await SnapshotAsync(get, ct);

        using var request = new HttpRequestMessage(new HttpMethod(probe.Method), new Uri(probe.Path.TrimStart('/'), UriKind.Relative));
        if (probe.Body is not null)
        {
            request.Content = new ByteArrayContent(probe.Body);
            request.Content.Headers.ContentType = probe.ContentType is null ? null : System.Net.Http.Headers.MediaTypeHeaderValue.Parse(probe.ContentType);
        }
        if (probe.Header is { } header)
            request.Headers.TryAddWithoutValidation(header.Name, header.Value);
        var label = $"{probe.Method} {Short(probe.Path)} ({probe.What})";
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(perRequest);
        HttpStatusCode status;
        string body;
        string? mediaType;
        try
        {
            Interlocked.Increment(ref _requests);
            using var response = await http.SendAsync(request, timeout.Token);
            status = response.StatusCode;
            mediaType = response.Content.Headers.ContentType?.MediaType;
            body = await response.Content.ReadAsStringAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            _failures.Add($"{label}: no answer within {perRequest.TotalSeconds:0} s");
            return;
        }
        catch (InvalidOperationException e) when (e.Message.Contains("null characters", StringComparison.Ordinal))
        {
            return; // the in-process test server refuses a NUL in the path before sending (Kestrel answers 400)
        }
        catch (HttpRequestException e)
        {
            _failures.Add($"{label}: the connection failed ({e.Message})");
            return;
        }
        var code = (int)status;
        if (code >= 500)
            _failures.Add($"{label}: {code} {Short(body.ReplaceLineEndings(" "))}");
        else if (code >= 400)
        {
            // An empty 400 is the server refusing the request line itself (e.g. a NUL in the path) before any endpoint runs.
            var openAi = probe.Path.StartsWith("/v1/", StringComparison.Ordinal);
            if (body.Length == 0 && code == 400)
            {
            }
            else if (openAi && !IsOpenAiError(body))
                _failures.Add($"{label}: {code} without the OpenAI error object: {Short(body)}");
            else if (!openAi && body.Length > 0 && mediaType != "application/problem+json")
                _failures.Add($"{label}: {code} as {mediaType ?? "no type"}, not ProblemDetails: {Short(body)}");
            foreach (var get in watched)
            {
                var after = await SnapshotAsync(get, ct);
                if (after != _snapshots[get])
                    _failures.Add($"{label}: answered {code} but GET {get} changed");
                _snapshots[get] = after;
            }
        }
        else
            foreach (var get in watched)
                _snapshots[get] = await SnapshotAsync(get, ct); // accepted: the change, if any, is legitimate
    }

    private static bool IsOpenAiError(string body)
    {
        try
        {
            return JsonNode.Parse(body)?["error"]?["message"] is JsonValue;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private async Task<string> SnapshotAsync(string path, CancellationToken ct)
    {
        Interlocked.Increment(ref _requests);
        using var response = await http.GetAsync(path.TrimStart('/'), ct);
        // An error answer carries a fresh trace id each time: its status is what it shows of the state.
        return response.IsSuccessStatusCode ? $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}" : $"{(int)response.StatusCode}";
    }
}

// Over 400 lines on purpose: a test double of the whole OpenAI surface the platform calls (chat, completions,
// embeddings, streaming, failure injection), kept in one file so a test reads it in one place.
using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Options;

namespace AspireTune.MockOpenAI;

/// <summary>
/// A real OpenAI-compatible HTTP server on 127.0.0.1: <c>/v1/chat/completions</c> (plain and streaming),
/// <c>/v1/completions</c>, <c>/v1/embeddings</c>, <c>/v1/models</c>, plus <c>/mock/stats</c> (request counts). A chat
/// request's <c>guided_choice</c> is kept in <see cref="State"/> and honoured: the answer is the choice closest to the reply.
/// Start it in-process with <see cref="StartAsync"/>, or run the exe (<c>--urls</c>, <c>MockOpenAI:*</c> settings).
/// </summary>
public sealed class MockOpenAIServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private MockOpenAIServer(WebApplication app, MockState state, string root)
    {
        _app = app;
        State = state;
        Root = root;
    }

    /// <summary>Base URL of the OpenAI API, e.g. <c>http://127.0.0.1:5123/v1</c>.</summary>
    public string BaseUrl => Root + "/v1";

    /// <summary>Server root, e.g. <c>http://127.0.0.1:5123</c>.</summary>
    public string Root { get; }

    /// <summary>Counters of what the server received.</summary>
    public MockState State { get; }

    /// <summary>Starts a server on 127.0.0.1 (<paramref name="port"/> 0 picks a free one) and returns it once it listens.</summary>
    public static async Task<MockOpenAIServer> StartAsync(int port = 0, Action<MockOpenAIOptions>? configure = null, CancellationToken ct = default)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ApplicationName = typeof(MockOpenAIServer).Assembly.GetName().Name });
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.Services.Configure<MockOpenAIOptions>(o => configure?.Invoke(o));
        var app = Build(builder);
        await app.StartAsync(ct);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new MockOpenAIServer(app, app.Services.GetRequiredService<MockState>(), address.TrimEnd('/'));
    }

    /// <summary>Registers the state and maps the endpoints on a builder the caller configured (used by the exe too).</summary>
    public static WebApplication Build(WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<MockState>();
        var app = builder.Build();
        var state = app.Services.GetRequiredService<MockState>();
        var options = app.Services.GetRequiredService<IOptions<MockOpenAIOptions>>().Value;
        var engine = new MockEngine(options, state);

        app.MapGet("/v1/models", (HttpContext http) => engine.Models(http));
        app.MapPost("/v1/chat/completions", (HttpContext http) => engine.HandleAsync(http, MockEngine.Kind.Chat));
        app.MapPost("/v1/completions", (HttpContext http) => engine.HandleAsync(http, MockEngine.Kind.Completion));
        app.MapPost("/v1/tokenize", (HttpContext http) => engine.TokenizeAsync(http));
        app.MapPost("/v1/embeddings", (HttpContext http) => engine.HandleAsync(http, MockEngine.Kind.Embedding));
        app.MapGet("/mock/stats", () => Results.Json(state.Snapshot()));
        return app;
    }

    public async ValueTask DisposeAsync()
    {
        // A hanging request must not keep the test waiting for a graceful stop.
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await _app.StopAsync(stop.Token);
        await _app.DisposeAsync();
    }
}

/// <summary>What the mock received: requests per model, per status, and per distinct prompt.</summary>
public sealed class MockState
{
    private long _requests;
    internal readonly ConcurrentDictionary<string, int> PerModel = new(StringComparer.Ordinal);
    internal readonly ConcurrentDictionary<int, int> PerStatus = new();
    internal readonly ConcurrentDictionary<string, int> PerPrompt = new(StringComparer.Ordinal);

    /// <summary>All requests to the <c>/v1</c> POST endpoints.</summary>
    public long Requests => Interlocked.Read(ref _requests);

    /// <summary>Requests naming this model.</summary>
    public int RequestsFor(string model) => PerModel.GetValueOrDefault(model);

    /// <summary>Answers with this status code.</summary>
    public int Answered(int status) => PerStatus.GetValueOrDefault(status);

    /// <summary>Requests naming this model whose last user message was <paramref name="prompt"/>.</summary>
    public int RequestsFor(string model, string prompt) => PerPrompt.GetValueOrDefault(model + "\n" + prompt);

    /// <summary>When each request for this model and prompt arrived (UTC), in arrival order.</summary>
    public IReadOnlyList<DateTimeOffset> ArrivalsFor(string model, string prompt) =>
        _arrivals.TryGetValue(model + "\n" + prompt, out var list) ? list.ToArray().Order().ToList() : [];

    private readonly ConcurrentDictionary<string, ConcurrentQueue<DateTimeOffset>> _arrivals = new(StringComparer.Ordinal);

    /// <summary>
    /// The <c>guided_choice</c> list of the last chat request naming this model whose last user message was
    /// <paramref name="prompt"/>; null when that request sent none (or no such request came).
    /// </summary>
    public IReadOnlyList<string>? GuidedChoiceFor(string model, string prompt) => _guided.TryGetValue(model + "\n" + prompt, out var choices) ? choices : null;

    /// <summary>Chat requests that carried <c>guided_choice</c>.</summary>
    public int GuidedRequests => _guidedRequests;

    private readonly ConcurrentDictionary<string, IReadOnlyList<string>?> _guided = new(StringComparer.Ordinal);
    private int _guidedRequests;

    internal void Guided(string model, string prompt, IReadOnlyList<string>? choices)
    {
        _guided[model + "\n" + prompt] = choices;
        if (choices is not null)
            Interlocked.Increment(ref _guidedRequests);
    }

    internal int Count(string model, string prompt)
    {
        Interlocked.Increment(ref _requests);
        PerModel.AddOrUpdate(model, 1, (_, n) => n + 1);
        var key = model + "\n" + prompt;
        _arrivals.GetOrAdd(key, _ => new ConcurrentQueue<DateTimeOffset>()).Enqueue(DateTimeOffset.UtcNow);
        return PerPrompt.AddOrUpdate(key, 1, (_, n) => n + 1);
    }

    internal void Answer(int status) => PerStatus.AddOrUpdate(status, 1, (_, n) => n + 1);

    internal object Snapshot() => new
    {
        requests = Requests,
        models = PerModel.ToDictionary(p => p.Key, p => p.Value),
        statuses = PerStatus.ToDictionary(p => p.Key.ToString(CultureInfo.InvariantCulture), p => p.Value),
    };
}

internal sealed class MockEngine(MockOpenAIOptions options, MockState state)
{
    internal enum Kind { Chat, Completion, Embedding }

    private readonly (Regex Regex, string Reply)[] _rules = options.Rules
        .Select(r => (new Regex(r.Pattern, RegexOptions.IgnoreCase | RegexOptions.CultureInvariant | RegexOptions.Compiled, TimeSpan.FromSeconds(1)), r.Reply))
        .ToArray();

    public IResult Models(HttpContext http)
    {
        if (!Authorized(http))
            return Unauthorized();
        var names = options.Models.Keys.DefaultIfEmpty("mock").Select(id => new { id, @object = "model", created = 0, owned_by = "aspiretune-mock" });
        return Results.Json(new { @object = "list", data = names });
    }

    public async Task HandleAsync(HttpContext http, Kind kind)
    {
        JsonNode? body;
        try
        {
            body = await JsonNode.ParseAsync(http.Request.Body, cancellationToken: http.RequestAborted);
        }
        catch (JsonException e)
        {
            await WriteError(http, 400, "invalid_request_error", $"The body is not JSON: {e.Message}");
            return;
        }
        var model = body?["model"]?.GetValue<string>() ?? "mock";
        if (kind == Kind.Completion && options.Scoring is not null && body?["echo"]?.GetValue<bool>() == true && body["max_tokens"]?.GetValue<int>() == 0)
        {
            await WriteScores(http, model, body["prompt"]);
            return;
        }
        var prompt = kind switch
        {
            Kind.Chat => LastUserMessage(body?["messages"] as JsonArray),
            Kind.Completion => PromptText(body?["prompt"]),
            _ => PromptText(body?["input"]),
        };
        var attempt = state.Count(model, prompt);
        // vLLM's extension, as AspireTune's own /v1 takes it: the answer must be one of these strings.
        var choices = kind == Kind.Chat && body?["guided_choice"] is JsonArray guided
            ? guided.Select(c => c is JsonValue v && v.TryGetValue<string>(out var text) ? text : "").ToList()
            : null;
        if (kind == Kind.Chat)
            state.Guided(model, prompt, choices);
        var behavior = Behavior(model, http.Request.Headers["X-Mock-Behavior"].ToString());

        var latency = behavior.LatencyMs ?? options.LatencyMs;
        if (behavior.Hang)
            latency = Timeout.Infinite;
        if (latency != 0)
        {
            try
            {
                await Task.Delay(latency, http.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                return; // the client gave up: nothing to answer
            }
        }

        if (!Authorized(http))
        {
            await WriteError(http, 401, "invalid_api_key", "Incorrect API key provided.");
            return;
        }
        var status = behavior.Status ?? (attempt <= behavior.FailFirst ? behavior.FailStatus : 200);
        if (status != 200)
        {
            if (status is 429 or 503)
                http.Response.Headers.RetryAfter = behavior.RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
            await WriteError(http, status, status == 429 ? "rate_limit_exceeded" : "server_error", $"Injected status {status}.");
            return;
        }
        if (behavior.Garbage)
        {
            state.Answer(200);
            http.Response.ContentType = "application/json";
            await http.Response.WriteAsync("<html>this is not an OpenAI answer", http.RequestAborted);
            return;
        }

        state.Answer(200);
        if (kind == Kind.Embedding)
        {
            await WriteEmbeddings(http, body, model);
            return;
        }
        var reply = behavior.AlternateReply is not null && attempt % 2 == 0 ? behavior.AlternateReply : behavior.Reply ?? Reply(prompt);
        if (choices is { Count: > 0 })
            reply = Closest(reply, choices);
        var promptTokens = kind == Kind.Chat ? CountTokens(body?["messages"] as JsonArray) : Words(prompt);
        var completionTokens = Words(reply);
        if (body?["stream"]?.GetValue<bool>() == true)
            await WriteStream(http, kind, model, reply, promptTokens, completionTokens, body["stream_options"]?["include_usage"]?.GetValue<bool>() == true);
        else
            await WriteCompletion(http, kind, model, reply, promptTokens, completionTokens);
    }

    private MockModelBehavior Behavior(string model, string header)
    {
        var behavior = options.Models.TryGetValue(model, out var configured) ? configured.Clone() : new MockModelBehavior();
        foreach (var part in header.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var (name, value) = part.Split('=', 2) is [var n, var v] ? (n, v) : (part, "0");
            var number = int.TryParse(value, CultureInfo.InvariantCulture, out var parsed) ? parsed : 0;
            switch (name.ToLowerInvariant())
            {
                case "latency": behavior.LatencyMs = number; break;
                case "status": behavior.Status = number; break;
                case "failfirst": behavior.FailFirst = number; break;
                case "failstatus": behavior.FailStatus = number; break;
                case "retryafter": behavior.RetryAfterSeconds = number; break;
                case "garbage": behavior.Garbage = true; break;
                case "hang": behavior.Hang = true; break;
            }
        }
        return behavior;
    }

    private bool Authorized(HttpContext http)
    {
        if (string.IsNullOrEmpty(options.ApiKey))
            return true;
        var auth = http.Request.Headers.Authorization.ToString();
        var given = auth.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? auth[7..].Trim() : http.Request.Headers["api-key"].ToString();
        return CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(given), Encoding.UTF8.GetBytes(options.ApiKey));
    }

    private IResult Unauthorized()
    {
        state.Answer(401);
        return Results.Json(new { error = new { message = "Incorrect API key provided.", type = "invalid_request_error", code = "invalid_api_key" } }, statusCode: 401);
    }

    private string Reply(string prompt)
    {
        foreach (var (regex, reply) in _rules)
        {
            var match = regex.Match(prompt);
            if (match.Success)
                return match.Result(reply);
        }
        return options.Fallback == "echo" ? prompt : options.Fallback;
    }

    // A constrained decoder's stand-in: the choice sharing the longest prefix with the free reply (case-insensitive), the first of equals.
    private static string Closest(string reply, List<string> choices) =>
        choices.Select((c, i) => (Choice: c, Index: i, Shared: c.Zip(reply).TakeWhile(p => char.ToLowerInvariant(p.First) == char.ToLowerInvariant(p.Second)).Count()))
            .OrderByDescending(c => c.Shared).ThenBy(c => c.Index).First().Choice;

    private static string LastUserMessage(JsonArray? messages)
    {
        if (messages is null)
            return "";
        for (var i = messages.Count - 1; i >= 0; i--)
            if (messages[i]?["role"]?.GetValue<string>() == "user")
                return ContentText(messages[i]!["content"]);
        return messages.Count > 0 ? ContentText(messages[^1]?["content"]) : "";
    }

    // Content is a string or a list of parts ({type:"text", text:"..."}).
    private static string ContentText(JsonNode? content) => content switch
    {
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonArray parts => string.Concat(parts.Select(p => p?["text"]?.GetValue<string>() ?? "")),
        _ => "",
    };

    private static string PromptText(JsonNode? prompt) => prompt switch
    {
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonArray list => string.Join("\n", list.Select(p => p is JsonValue pv && pv.TryGetValue<string>(out var ps) ? ps : "")),
        _ => "",
    };

    private static int CountTokens(JsonArray? messages) =>
        messages?.Sum(m => Words(ContentText(m?["content"])) + 3) ?? 0;

    // Whitespace words stand in for tokens: deterministic and easy to predict in tests.
    internal static int Words(string text)
    {
        var count = 0;
        var inWord = false;
        foreach (var c in text)
        {
            if (char.IsWhiteSpace(c))
                inWord = false;
            else if (!inWord)
            {
                inWord = true;
                count++;
            }
        }
        return count;
    }

    private static async Task WriteCompletion(HttpContext http, Kind kind, string model, string reply, int promptTokens, int completionTokens)
    {
        http.Response.ContentType = "application/json";
        using var buffer = new MemoryStream();
        await using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("id", "mock-" + Guid.NewGuid().ToString("N"));
            json.WriteString("object", kind == Kind.Chat ? "chat.completion" : "text_completion");
            json.WriteNumber("created", DateTimeOffset.UtcNow.ToUnixTimeSeconds());
            json.WriteString("model", model);
            json.WriteStartArray("choices");
            json.WriteStartObject();
            json.WriteNumber("index", 0);
            if (kind == Kind.Chat)
            {
                json.WriteStartObject("message");
                json.WriteString("role", "assistant");
                json.WriteString("content", reply);
                json.WriteEndObject();
            }
            else
                json.WriteString("text", reply);
            json.WriteString("finish_reason", "stop");
            json.WriteEndObject();
            json.WriteEndArray();
            WriteUsage(json, promptTokens, completionTokens);
            json.WriteEndObject();
        }
        await http.Response.Body.WriteAsync(buffer.GetBuffer().AsMemory(0, (int)buffer.Length), http.RequestAborted);
    }

    private static void WriteUsage(Utf8JsonWriter json, int promptTokens, int completionTokens)
    {
        json.WriteStartObject("usage");
        json.WriteNumber("prompt_tokens", promptTokens);
        json.WriteNumber("completion_tokens", completionTokens);
        json.WriteNumber("total_tokens", promptTokens + completionTokens);
        json.WriteEndObject();
    }

    private static async Task WriteStream(HttpContext http, Kind kind, string model, string reply, int promptTokens, int completionTokens, bool includeUsage)
    {
        http.Response.ContentType = "text/event-stream";
        var id = "mock-" + Guid.NewGuid().ToString("N");
        var pieces = reply.Split(' ');
        for (var i = 0; i < pieces.Length; i++)
        {
            var text = i == 0 ? pieces[i] : " " + pieces[i];
            await WriteChunk(http, json =>
            {
                WriteChunkHeader(json, id, kind, model);
                json.WriteStartArray("choices");
                json.WriteStartObject();
                json.WriteNumber("index", 0);
                if (kind == Kind.Chat)
                {
                    json.WriteStartObject("delta");
                    if (i == 0)
                        json.WriteString("role", "assistant");
                    json.WriteString("content", text);
                    json.WriteEndObject();
                }
                else
                    json.WriteString("text", text);
                if (i == pieces.Length - 1)
                    json.WriteString("finish_reason", "stop");
                else
                    json.WriteNull("finish_reason");
                json.WriteEndObject();
                json.WriteEndArray();
            });
        }
        if (includeUsage)
            await WriteChunk(http, json =>
            {
                WriteChunkHeader(json, id, kind, model);
                json.WriteStartArray("choices");
                json.WriteEndArray();
                WriteUsage(json, promptTokens, completionTokens);
            });
        await http.Response.WriteAsync("data: [DONE]\n\n", http.RequestAborted);
    }

    private static void WriteChunkHeader(Utf8JsonWriter json, string id, Kind kind, string model)
    {
        json.WriteString("id", id);
        json.WriteString("object", kind == Kind.Chat ? "chat.completion.chunk" : "text_completion");
        json.WriteNumber("created", DateTimeOffset.UtcNow.ToUnixTimeSeconds());
        json.WriteString("model", model);
    }

    private static async Task WriteChunk(HttpContext http, Action<Utf8JsonWriter> write)
    {
        using var buffer = new MemoryStream();
        await using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            write(json);
            json.WriteEndObject();
        }
        await http.Response.WriteAsync("data: " + Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length) + "\n\n", http.RequestAborted);
        await http.Response.Body.FlushAsync(http.RequestAborted);
    }

    private static async Task WriteEmbeddings(HttpContext http, JsonNode? body, string model)
    {
        var inputs = body?["input"] switch
        {
            JsonArray list => list.Select(i => i is JsonValue v && v.TryGetValue<string>(out var s) ? s : "").ToList(),
            JsonValue v when v.TryGetValue<string>(out var s) => [s],
            _ => [""],
        };
        var dimensions = body?["dimensions"]?.GetValue<int>() ?? 64;
        http.Response.ContentType = "application/json";
        await using var json = new Utf8JsonWriter(http.Response.Body);
        json.WriteStartObject();
        json.WriteString("object", "list");
        json.WriteString("model", model);
        json.WriteStartArray("data");
        var tokens = 0;
        for (var i = 0; i < inputs.Count; i++)
        {
            tokens += Words(inputs[i]);
            json.WriteStartObject();
            json.WriteString("object", "embedding");
            json.WriteNumber("index", i);
            json.WriteStartArray("embedding");
            foreach (var x in Embed(inputs[i], dimensions))
                json.WriteNumberValue(x);
            json.WriteEndArray();
            json.WriteEndObject();
        }
        json.WriteEndArray();
        json.WriteStartObject("usage");
        json.WriteNumber("prompt_tokens", tokens);
        json.WriteNumber("total_tokens", tokens);
        json.WriteEndObject();
        json.WriteEndObject();
        await json.FlushAsync(http.RequestAborted);
    }

    // Bag of hashed lower-case words, L2-normalised: texts sharing words get a positive cosine.
    internal static float[] Embed(string text, int dimensions)
    {
        var vector = new float[dimensions];
        foreach (var word in text.ToLowerInvariant().Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
        {
            var hash = SHA256.HashData(Encoding.UTF8.GetBytes(word));
            var index = (int)(BitConverter.ToUInt32(hash, 0) % (uint)dimensions);
            vector[index] += (hash[4] & 1) == 0 ? 1f : -1f;
        }
        var norm = MathF.Sqrt(vector.Sum(x => x * x));
        if (norm > 0)
            for (var i = 0; i < vector.Length; i++)
                vector[i] /= norm;
        return vector;
    }

    /// <summary><c>/v1/tokenize</c>: one token per UTF-8 byte of the prompt, or of the messages' contents joined by newlines.</summary>
    public async Task TokenizeAsync(HttpContext http)
    {
        if (options.Scoring is not { } scoring)
        {
            state.Answer(404);
            http.Response.StatusCode = 404;
            return;
        }
        var body = await JsonNode.ParseAsync(http.Request.Body, cancellationToken: http.RequestAborted);
        var text = body?["messages"] is JsonArray messages
            ? string.Join("\n", messages.Select(m => ContentText(m?["content"])))
            : PromptText(body?["prompt"]);
        var tokens = Encoding.UTF8.GetBytes(text).Select(b => (int)b).ToArray();
        state.Answer(200);
        await http.Response.WriteAsJsonAsync(new { count = tokens.Length, max_model_len = scoring.ContextLength, tokens, eos_token_id = (int?)null }, http.RequestAborted);
    }

    /// <summary>Echo scoring: every prompt (token-id array or string) comes back with a logprob per token (the first null).</summary>
    private async Task WriteScores(HttpContext http, string model, JsonNode? prompt)
    {
        var prompts = prompt switch
        {
            JsonArray a when a.Count > 0 && a[0] is JsonArray => a.Select(p => Encoding.UTF8.GetString(p!.AsArray().Select(t => (byte)t!.GetValue<int>()).ToArray())).ToList(),
            JsonArray a when a.Count > 0 && a[0] is JsonValue v && v.GetValueKind() == JsonValueKind.Number => [Encoding.UTF8.GetString(a.Select(t => (byte)t!.GetValue<int>()).ToArray())],
            _ => PromptText(prompt).Split('\n').ToList(),
        };
        var choices = prompts.Select((text, i) =>
        {
            var bytes = Encoding.UTF8.GetBytes(text);
            var rule = options.Scoring!.Rules.FirstOrDefault(r => Regex.IsMatch(text, r.Pattern, RegexOptions.IgnoreCase | RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)));
            var logprob = rule?.Logprob ?? options.Scoring.DefaultLogprob;
            return new
            {
                index = i,
                text,
                logprobs = new
                {
                    tokens = bytes.Select(b => ((char)b).ToString()).ToArray(),
                    token_logprobs = bytes.Select((_, k) => k == 0 ? (double?)null : logprob).ToArray(),
                    text_offset = bytes.Select((_, k) => k).ToArray(),
                },
                finish_reason = "length",
            };
        }).ToList();
        state.Answer(200);
        await http.Response.WriteAsJsonAsync(new
        {
            id = "cmpl-mock", @object = "text_completion", created = 0, model, choices,
            usage = new { prompt_tokens = prompts.Sum(p => Encoding.UTF8.GetByteCount(p)), completion_tokens = 0, total_tokens = prompts.Sum(p => Encoding.UTF8.GetByteCount(p)) },
        }, http.RequestAborted);
    }

    private async Task WriteError(HttpContext http, int status, string code, string message)
    {
        state.Answer(status);
        http.Response.StatusCode = status;
        await http.Response.WriteAsJsonAsync(new { error = new { message, type = status == 401 ? "invalid_request_error" : code, code } }, http.RequestAborted);
    }
}

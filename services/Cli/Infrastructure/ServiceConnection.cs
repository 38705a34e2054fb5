using System.CommandLine;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using AspireTune.Cli.Commands;
using AspireTune.ServiceDefaults.Data;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Logging.Console;

namespace AspireTune.Cli.Infrastructure;

/// <summary>The options every command that talks to the services has: where they are, the key, JSON output.</summary>
public sealed class ConnectionOptions
{
    public const string DefaultKeyVariable = "ASPIRETUNE_API_KEY";

    public Option<string?> Url { get; } = new("--url") { Description = "A running deployment (e.g. http://127.0.0.1:5080); default: the services in this process (embedded host)." };
    public Option<string?> Data { get; } = new("--data") { Description = "Data folder of the embedded host (default ASPIRETUNE_DATA, else ./data)." };
    public Option<string> KeyVariable { get; } = new("--api-key-env") { Description = "Environment variable holding the API key sent to --url.", DefaultValueFactory = _ => DefaultKeyVariable };
    public Option<bool> Json { get; } = new("--json") { Description = "Write JSON to stdout (progress and messages go to stderr)." };

    /// <summary>Adds the options to a command; returns it for chaining.</summary>
    public Command AddTo(Command command)
    {
        command.Options.Add(Url);
        command.Options.Add(Data);
        command.Options.Add(KeyVariable);
        command.Options.Add(Json);
        return command;
    }
}

/// <summary>
/// The services a command talks to, over HTTP either way: a running deployment (<c>--url</c>, the key from an
/// environment variable as <c>Authorization: Bearer</c>) or the embedded host started in this process on a free
/// loopback port, with the same data folder <c>aspiretune serve</c> uses.
/// </summary>
public sealed class ServiceConnection : IAsyncDisposable
{
    private ServiceConnection(HttpClient http, string baseUrl, WebApplication? host)
    {
        Http = http;
        BaseUrl = baseUrl.TrimEnd('/');
        Host = host;
    }

    public HttpClient Http { get; }

    /// <summary>Root URL of the services, without a trailing slash.</summary>
    public string BaseUrl { get; }

    /// <summary>The embedded host, when the services run in this process.</summary>
    public WebApplication? Host { get; }

    /// <summary>The data folder of the embedded host (reports are written there), or the current folder.</summary>
    public string LocalFolder(string name) =>
        Host?.Services.GetRequiredService<DataRoot>().Folder(name) ?? Directory.CreateDirectory(Path.Combine(Environment.CurrentDirectory, name)).FullName;

    public static Task<ServiceConnection> OpenAsync(ConnectionOptions options, ParseResult parse, CancellationToken ct) =>
        OpenAsync(parse.GetValue(options.Url), parse.GetValue(options.Data), parse.GetValue(options.KeyVariable) ?? ConnectionOptions.DefaultKeyVariable, ct);

    public static async Task<ServiceConnection> OpenAsync(string? url, string? data, string keyVariable, CancellationToken ct)
    {
        if (url is not null)
        {
            if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
                throw new CliException($"--url '{url}' is not an absolute http(s) URL.", ExitCodes.Usage);
            var http = new HttpClient { BaseAddress = new Uri(uri.GetLeftPart(UriPartial.Path).TrimEnd('/') + "/"), Timeout = TimeSpan.FromMinutes(5) };
            if (Environment.GetEnvironmentVariable(keyVariable) is { Length: > 0 } key)
                http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
            return new ServiceConnection(http, http.BaseAddress.ToString(), null);
        }

        // Port 0: the OS picks a free loopback port, so a command never collides with a running server.
        var app = EmbeddedHost.Build(ServeCommand.HostArgs("http://127.0.0.1:0", data), builder =>
        {
            // stdout belongs to the command's output (tables, JSON): the hosts log warnings and errors to stderr.
            builder.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
            builder.Logging.AddFilter((category, level) => level >= LogLevel.Error
                || (level == LogLevel.Warning && category?.StartsWith("AspireTune.", StringComparison.Ordinal) == true
                    && !category.StartsWith("AspireTune.ServiceDefaults.Security", StringComparison.Ordinal)));
        });
        await app.StartAsync(ct);
        var baseUrl = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        EmbeddedHost.PointServicesAt(app, baseUrl);
        return new ServiceConnection(new HttpClient { BaseAddress = new Uri(baseUrl.TrimEnd('/') + "/"), Timeout = TimeSpan.FromMinutes(5) }, baseUrl, app);
    }

    public Task<T> GetAsync<T>(string path, CancellationToken ct) => SendAsync<T>(new HttpRequestMessage(HttpMethod.Get, path), ct);

    public Task<T> PostAsync<TRequest, T>(string path, TRequest body, CancellationToken ct) =>
        SendAsync<T>(new HttpRequestMessage(HttpMethod.Post, path) { Content = JsonContent.Create(body, options: CliIo.Json) }, ct);

    public Task<T> PutAsync<TRequest, T>(string path, TRequest body, CancellationToken ct) =>
        SendAsync<T>(new HttpRequestMessage(HttpMethod.Put, path) { Content = JsonContent.Create(body, options: CliIo.Json) }, ct);

    public Task<T> PostContentAsync<T>(string path, HttpContent content, CancellationToken ct) =>
        SendAsync<T>(new HttpRequestMessage(HttpMethod.Post, path) { Content = content }, ct);

    public async Task<T> SendAsync<T>(HttpRequestMessage request, CancellationToken ct)
    {
        using var response = await SendRawAsync(request, ct);
        return await response.Content.ReadFromJsonAsync<T>(CliIo.Json, ct) ?? throw new CliException($"{request.Method} {request.RequestUri} answered an empty body.");
    }

    /// <summary>Sends and checks the status; a refusal becomes a <see cref="CliException"/> with the service's own words.</summary>
    public async Task<HttpResponseMessage> SendRawAsync(HttpRequestMessage request, CancellationToken ct, HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead)
    {
        HttpResponseMessage response;
        try
        {
            response = await Http.SendAsync(request, completion, ct);
        }
        catch (HttpRequestException e)
        {
            throw new CliException($"Cannot reach {BaseUrl}: {e.Message}");
        }
        if (response.IsSuccessStatusCode)
            return response;
        using (response)
            throw new CliException(await DescribeAsync(request, response, ct), response.StatusCode == HttpStatusCode.BadRequest ? ExitCodes.Usage : ExitCodes.Error);
    }

    public async Task DeleteAsync(string path, CancellationToken ct)
    {
        using var _ = await SendRawAsync(new HttpRequestMessage(HttpMethod.Delete, path), ct);
    }

    /// <summary>The ProblemDetails (title, detail, errors by field) or OpenAI error object of a refusal, as lines.</summary>
    private static async Task<string> DescribeAsync(HttpRequestMessage request, HttpResponseMessage response, CancellationToken ct)
    {
        var head = $"{request.Method} {request.RequestUri?.OriginalString} answered {(int)response.StatusCode} {response.StatusCode}";
        if (response.StatusCode == HttpStatusCode.Unauthorized)
            return head + ": set the API key in the environment variable named by --api-key-env (default ASPIRETUNE_API_KEY).";
        var body = await response.Content.ReadAsStringAsync(ct);
        try
        {
            using var document = JsonDocument.Parse(body);
            if (document.RootElement.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object)
                return $"{head}: {error.GetProperty("message").GetString()}";
            var problem = document.RootElement.Deserialize<HttpValidationProblemDetails>(CliIo.Json);
            if (problem is not null)
            {
                var lines = new List<string> { $"{head}: {problem.Title}" };
                if (problem.Detail is { Length: > 0 } detail)
                    lines.Add(detail);
                lines.AddRange(problem.Errors.SelectMany(e => e.Value.Select(m => $"  {e.Key}: {m}")));
                return string.Join(Environment.NewLine, lines);
            }
        }
        catch (JsonException)
        {
        }
        return body.Length == 0 ? head : $"{head}: {(body.Length > 500 ? body[..500] + "..." : body)}";
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        if (Host is not null)
        {
            await Host.StopAsync(CancellationToken.None);
            await Host.DisposeAsync();
        }
    }
}

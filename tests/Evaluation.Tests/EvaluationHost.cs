using System.Collections.Concurrent;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using AspireTune.Contracts.Evaluation;
using AspireTune.Evaluation.Apis;
using AspireTune.Evaluation.Data;
using AspireTune.TestSupport;
using MassTransit;
using MassTransit.Testing;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace AspireTune.Evaluation.Tests;

/// <summary>
/// The Evaluation service in-process (WebApplicationFactory, in-memory bus with the MassTransit test harness,
/// SQLite in a temp data folder), plus helpers for its API. Every log line is captured for the secret checks.
/// </summary>
public sealed class EvaluationHost : IAsyncDisposable
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { Converters = { new JsonStringEnumConverter() } };

    private readonly WebApplicationFactory<Program> _factory;

    private EvaluationHost(WebApplicationFactory<Program> factory, string dataFolder, LogCapture logs)
    {
        _factory = factory;
        DataFolder = dataFolder;
        Logs = logs;
        Client = factory.CreateClient();
        Harness = factory.Services.GetTestHarness();
    }

    public string DataFolder { get; }
    public HttpClient Client { get; }
    public ITestHarness Harness { get; }
    public LogCapture Logs { get; }
    public IServiceProvider Services => _factory.Services;

    /// <summary>Starts a host. Pass the <paramref name="dataFolder"/> of a previous host to simulate a restart.</summary>
    public static EvaluationHost Start(string? dataFolder = null, IDictionary<string, string?>? settings = null)
    {
        dataFolder ??= TestInfrastructure.TempDataFolder("aspiretune-eval");
        var logs = new LogCapture();
        var factory = new WebApplicationFactory<Program>().WithWebHostBuilder(builder =>
        {
            builder.UseSetting("ASPIRETUNE_DATA", dataFolder);
            // Fast failure in tests: short timeouts and back-off; Retry-After still governs 429s.
            builder.UseSetting("Evaluation:ModelHttp:AttemptTimeoutSeconds", "5");
            builder.UseSetting("Evaluation:ModelHttp:TotalTimeoutSeconds", "30");
            builder.UseSetting("Evaluation:ModelHttp:RetryBaseDelaySeconds", "0.01");
            builder.UseSetting("Evaluation:ModelHttp:MaxRetries", "3");
            builder.UseSetting("Evaluation:BootstrapResamples", "500");
            foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
                builder.UseSetting(key, value);
            builder.ConfigureLogging(logging =>
            {
                logging.SetMinimumLevel(LogLevel.Debug);
                logging.AddProvider(logs);
            });
            builder.ConfigureServices(services => services.AddMassTransitTestHarness());
        });
        var host = new EvaluationHost(factory, dataFolder, logs);
        return host;
    }

    public async Task<ModelEndpointResponse> AddEndpointAsync(string id, string baseUrl, string model, string? apiKeySecret = null, int maxConcurrency = 4,
        double inputPrice = 1, double outputPrice = 2, int? requestsPerMinute = null)
    {
        var response = await Client.PostAsJsonAsync("/api/evaluation/models", new
        {
            id,
            kind = "OpenAICompatible",
            baseUrl,
            model,
            apiKeySecret,
            inputPricePerMillion = inputPrice,
            outputPricePerMillion = outputPrice,
            maxConcurrency,
            requestsPerMinute,
        }, Json);
        await EnsureSuccess(response);
        return (await response.Content.ReadFromJsonAsync<ModelEndpointResponse>(Json))!;
    }

    public async Task<PromptVersionResponse> AddPromptAsync(string name, string template, string? system = null, params string[] labels)
    {
        var response = await Client.PostAsJsonAsync("/api/evaluation/prompts", new { name, template, system, labels }, Json);
        await EnsureSuccess(response);
        return (await response.Content.ReadFromJsonAsync<PromptVersionResponse>(Json))!;
    }

    public async Task<DatasetResponse> UploadDatasetAsync(string name, string jsonl)
    {
        var response = await Client.PostAsync($"/api/evaluation/datasets?name={name}", new StringContent(jsonl, Encoding.UTF8, "application/jsonl"));
        await EnsureSuccess(response);
        return (await response.Content.ReadFromJsonAsync<DatasetResponse>(Json))!;
    }

    public static string Jsonl(IEnumerable<object> lines) => string.Join("\n", lines.Select(l => JsonSerializer.Serialize(l, Json))) + "\n";

    public async Task<RunResponse> StartRunAsync(object request)
    {
        var response = await Client.PostAsJsonAsync("/api/evaluation/runs", request, Json);
        await EnsureSuccess(response);
        return (await response.Content.ReadFromJsonAsync<RunResponse>(Json))!;
    }

    public async Task<RunResponse> GetRunAsync(Guid id) =>
        (await Client.GetFromJsonAsync<RunResponse>($"/api/evaluation/runs/{id}", Json))!;

    /// <summary>Polls until the run has finished (completed, failed or cancelled).</summary>
    public async Task<RunResponse> WaitForRunAsync(Guid id, int timeoutSeconds = 90)
    {
        var deadline = DateTime.UtcNow.AddSeconds(timeoutSeconds);
        while (true)
        {
            var run = await GetRunAsync(id);
            if (run.Status is RunStatus.Completed or RunStatus.Failed or RunStatus.Cancelled)
                return run;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"Run {id} still {run.Status} after {timeoutSeconds} s ({run.CompletedCalls}/{run.TotalCalls} calls).");
            await Task.Delay(100);
        }
    }

    public async Task<List<JsonElement>> ResultsAsync(Guid id)
    {
        var text = await Client.GetStringAsync($"/api/evaluation/runs/{id}/results");
        return text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();
    }

    /// <summary>Published messages of type <typeparamref name="T"/> so far, serialized as the bus would carry them.</summary>
    public IEnumerable<T> Published<T>() where T : class =>
        Harness.Published.Select<T>().Select(m => m.Context.Message);

    /// <summary>Waits (up to 30 s) until a matching message was published: events leave through the outbox just after their commit.</summary>
    public async Task WaitForPublishedAsync<T>(Func<T, bool> match) where T : class
    {
        var until = DateTime.UtcNow.AddSeconds(30);
        while (!Published<T>().Any(match) && DateTime.UtcNow < until)
            await Task.Delay(20, TestContext.Current.CancellationToken);
    }

    public static async Task EnsureSuccess(HttpResponseMessage response)
    {
        if (!response.IsSuccessStatusCode)
            throw new HttpRequestException($"{(int)response.StatusCode} {response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _factory.DisposeAsync();
    }
}

/// <summary>Keeps every log message (formatted, with exceptions) of a host.</summary>
public sealed class LogCapture : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _lines = new();

    public IReadOnlyCollection<string> Lines => _lines;

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, _lines);

    public void Dispose()
    {
    }

    private sealed class Logger(string category, ConcurrentQueue<string> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var text = $"{logLevel} {category}: {formatter(state, exception)}";
            if (state is IEnumerable<KeyValuePair<string, object?>> values)
                text += " " + string.Join(" ", values.Select(v => $"{v.Key}={v.Value}"));
            lines.Enqueue(exception is null ? text : text + "\n" + exception);
        }
    }
}

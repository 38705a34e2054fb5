using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using AspireTune.TestSupport;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;

namespace AspireTune.FineTuning.Tests;

/// <summary>
/// The FineTuning service in process: its own Program, a temporary data folder, SQLite and the in-memory bus
/// unless a test passes a database or broker, and a 2-layer built-in model so training takes seconds.
/// </summary>
public sealed class FineTuningFactory(IDictionary<string, string?>? settings = null) : WebApplicationFactory<Program>
{
    public string DataFolder { get; } = TestInfrastructure.TempDataFolder("finetuning");

    /// <summary>Settings every test host and worker process shares (tiny model, fast polling).</summary>
    public static Dictionary<string, string?> Defaults(string dataFolder) => new()
    {
        ["ASPIRETUNE_DATA"] = dataFolder,
        ["FineTuning:BuiltIn:Layers"] = "2",
        ["FineTuning:BuiltIn:Hidden"] = "32",
        ["FineTuning:BuiltIn:Heads"] = "2",
        ["FineTuning:BuiltIn:Context"] = "256",
        ["FineTuning:PollIntervalMs"] = "200",
        ["FineTuning:HeartbeatSeconds"] = "1",
        ["FineTuning:LeaseSeconds"] = "4",
        ["FineTuning:ProgressIntervalMs"] = "0",
        ["FineTuning:ExactMatchExamples"] = "4",
        ["FineTuning:Curation:MinExamples"] = "10",
        ["Messaging:RetryLimit"] = "1",
        ["Messaging:RetryMinIntervalMs"] = "10",
    };

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Production");
        foreach (var (key, value) in Defaults(DataFolder))
            builder.UseSetting(key, value);
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
            builder.UseSetting(key, value);
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        try
        {
            Directory.Delete(DataFolder, recursive: true);
        }
        catch (IOException)
        {
            // A file still held open by a stopping thread; the temp folder is cleaned by the OS later.
        }
    }
}

/// <summary>HTTP helpers shared by the API, integration and worker tests.</summary>
internal static class Api
{
    public static async Task<JsonElement> UploadAsync(HttpClient http, byte[] content, string name = "train.jsonl")
    {
        using var form = new MultipartFormDataContent();
        var file = new ByteArrayContent(content);
        file.Headers.ContentType = new MediaTypeHeaderValue("application/jsonl");
        form.Add(file, "file", name);
        var response = await http.PostAsync("/api/fine-tuning/files", form, TestContext.Current.CancellationToken);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(TestContext.Current.CancellationToken);
        response.IsSuccessStatusCode.Should().BeTrue(body.ToString());
        return body;
    }

    public static async Task<JsonElement> CreateJobAsync(HttpClient http, object request)
    {
        var response = await http.PostAsJsonAsync("/api/fine-tuning/jobs", request, TestContext.Current.CancellationToken);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(TestContext.Current.CancellationToken);
        response.StatusCode.Should().Be(System.Net.HttpStatusCode.Created, body.ToString());
        return body;
    }

    public static async Task<JsonElement> GetJsonAsync(HttpClient http, string path)
    {
        var response = await http.GetAsync(path, TestContext.Current.CancellationToken);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(TestContext.Current.CancellationToken);
        response.IsSuccessStatusCode.Should().BeTrue($"{path}: {body}");
        return body;
    }

    /// <summary>Polls a job until it reaches a final status (or the time runs out) and returns it.</summary>
    public static async Task<JsonElement> WaitForJobAsync(HttpClient http, string jobId, TimeSpan timeout, params string[] statuses)
    {
        var until = DateTime.UtcNow + timeout;
        statuses = statuses.Length == 0 ? ["succeeded", "failed", "cancelled"] : statuses;
        while (true)
        {
            // A job sent as a command appears only once its consumer ran: 404 until then.
            using var response = await http.GetAsync($"/api/fine-tuning/jobs/{jobId}", TestContext.Current.CancellationToken);
            if (response.StatusCode == System.Net.HttpStatusCode.NotFound && DateTime.UtcNow < until)
            {
                await Task.Delay(200, TestContext.Current.CancellationToken);
                continue;
            }
            var job = await GetJsonAsync(http, $"/api/fine-tuning/jobs/{jobId}");
            if (statuses.Contains(job.GetProperty("status").GetString()))
                return job;
            if (DateTime.UtcNow > until)
                throw new TimeoutException($"Job {jobId} is still {job.GetProperty("status")} after {timeout}: {job}");
            await Task.Delay(200, TestContext.Current.CancellationToken);
        }
    }
}

/// <summary>
/// Tests that train or create models run one after another and apart from every other test: on two shared cores parallel
/// training only slows each run down, and TorchSharp's global random generator is shared by the process,
/// so training here would disturb the engine tests that check bit-identical resumes.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TrainingCollection
{
    public const string Name = "training";
}

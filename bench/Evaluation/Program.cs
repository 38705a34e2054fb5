using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using AspireTune.Contracts.Evaluation;
using AspireTune.Evaluation;
using AspireTune.Evaluation.Apis;
using AspireTune.Evaluation.Data;
using AspireTune.ServiceDefaults.Messaging;
using Microsoft.AspNetCore.Hosting.Server;
using MassTransit;
using Microsoft.AspNetCore.Hosting.Server.Features;

// bench/evaluation.sh drives three modes:
//   emit DIR ITEMS                  writes dataset.jsonl (AspireTune) and tests.jsonl (promptfoo), same items
//   run MOCK_BASE_URL DIR CONC OUT  one AspireTune run over DIR/dataset.jsonl at concurrency CONC, result JSON to OUT
//   report DIR                      the side-by-side table from DIR/aspiretune-*.json and DIR/promptfoo-*.json
const string Template = "Classify as spam or ham: {{$input}}";
var json = new JsonSerializerOptions(JsonSerializerDefaults.Web) { Converters = { new JsonStringEnumConverter() } };

switch (args.FirstOrDefault())
{
    case "emit":
        Emit(args[1], int.Parse(args[2], CultureInfo.InvariantCulture));
        return 0;
    case "run":
        await RunAsync(args[1], args[2], int.Parse(args[3], CultureInfo.InvariantCulture), args[4]);
        return 0;
    case "report":
        return Report(args[1]);
    default:
        Console.Error.WriteLine("usage: emit DIR ITEMS | run MOCK_BASE_URL DIR CONCURRENCY OUT | report DIR");
        return 2;
}

static void Emit(string dir, int items)
{
    Directory.CreateDirectory(dir);
    using var ours = new StreamWriter(Path.Combine(dir, "dataset.jsonl"));
    using var theirs = new StreamWriter(Path.Combine(dir, "tests.jsonl"));
    for (var i = 0; i < items; i++)
    {
        var spam = i % 3 == 0;
        var input = spam ? $"message {i}: you win a free prize" : $"message {i}: see you at lunch on day {i % 7}";
        var expected = spam ? "spam" : "ham";
        ours.WriteLine(JsonSerializer.Serialize(new { input, expected }));
        theirs.WriteLine(JsonSerializer.Serialize(new { vars = new { input, expected } }));
    }
}

async Task RunAsync(string mockBaseUrl, string dir, int concurrency, string outFile)
{
    var data = Path.Combine(dir, $"aspiretune-data-{concurrency}-{Guid.NewGuid():N}");
    var builder = WebApplication.CreateBuilder(new[] { "--urls", "http://127.0.0.1:0", "--ASPIRETUNE_DATA", data, "--Logging:LogLevel:Default", "Warning" }
        .Concat((Environment.GetEnvironmentVariable("BENCH_ARGS") ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToArray());
    builder.AddServiceDefaults();
    builder.AddEvaluation();
    builder.AddMessaging();
    var app = builder.Build();
    app.MapDefaultEndpoints();
    app.MapEvaluation();
    await app.StartAsync();
    var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
    using var http = new HttpClient { BaseAddress = new Uri(address) };
    // Completion is observed as a subscriber sees it, through the EvaluationCompleted event: polling the API
    // at a rate fine enough for a 4 s run would itself cost CPU that production does not spend.
    var completions = new ConcurrentDictionary<Guid, TaskCompletionSource>();
    var subscription = app.Services.GetRequiredService<IBus>().ConnectReceiveEndpoint("bench-evaluation-completed", endpoint =>
    {
        endpoint.Handler<EvaluationCompleted>(context =>
        {
            completions.GetOrAdd(context.Message.RunId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
            return Task.CompletedTask;
        });
        endpoint.Handler<EvaluationFailed>(context =>
        {
            completions.GetOrAdd(context.Message.RunId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously))
                .TrySetException(new InvalidOperationException($"Run {context.Message.RunId} failed: {context.Message.Reason}"));
            return Task.CompletedTask;
        });
    });
    await subscription.Ready;

    await Ok(await http.PostAsJsonAsync("/api/evaluation/models", new { id = "bench", kind = "OpenAICompatible", baseUrl = mockBaseUrl, model = "bench-model", maxConcurrency = concurrency }, json));
    await Ok(await http.PostAsJsonAsync("/api/evaluation/prompts", new { name = "spam", template = Template }, json));
    var content = await File.ReadAllBytesAsync(Path.Combine(dir, "dataset.jsonl"));
    var items = content.Count(b => b == (byte)'\n');
    var dataset = await Ok(await http.PostAsync("/api/evaluation/datasets?name=bench", new ByteArrayContent(content)));
    var sha = JsonNode.Parse(dataset)!["sha256"]!.GetValue<string>();

    // Warm-up (JIT, connection pool, SQLite) on other inputs, as a service that has been running would be.
    var warmup = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Range(0, int.Parse(Environment.GetEnvironmentVariable("BENCH_WARMUP") ?? "500", CultureInfo.InvariantCulture)).Select(i => JsonSerializer.Serialize(new { input = $"warm-up {i}", expected = "ham" }) + "\n")));
    var warmSha = JsonNode.Parse(await Ok(await http.PostAsync("/api/evaluation/datasets?name=warmup", new ByteArrayContent(warmup))))!["sha256"]!.GetValue<string>();
    await RunOnce(http, warmSha, completions);

    var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
    var clock = Stopwatch.StartNew();
    var run = await RunOnce(http, sha, completions);
    var seconds = clock.Elapsed.TotalSeconds;
    var cpu = Process.GetCurrentProcess().TotalProcessorTime - cpuBefore;

    var summary = run.Summaries!.Single();
    var result = new
    {
        tool = "aspiretune",
        concurrency,
        items,
        seconds,
        itemsPerSecond = items / seconds,
        cpuMsPerItem = cpu.TotalMilliseconds / items,
        errors = summary.Errors,
        accuracy = summary.Metrics.Single(m => m.Name == "exact").Value,
    };
    await File.WriteAllTextAsync(outFile, JsonSerializer.Serialize(result, json));
    Console.WriteLine(JsonSerializer.Serialize(result, json));
    await app.StopAsync();
}

async Task<RunResponse> RunOnce(HttpClient http, string sha, ConcurrentDictionary<Guid, TaskCompletionSource> completions)
{
    var created = JsonSerializer.Deserialize<RunResponse>(await Ok(await http.PostAsJsonAsync("/api/evaluation/runs",
        new { prompts = new[] { "spam" }, modelEndpoints = new[] { "bench" }, dataset = sha, scorers = new[] { "exact" } }, json)), json)!;
    await completions.GetOrAdd(created.Id, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
    return (await http.GetFromJsonAsync<RunResponse>($"/api/evaluation/runs/{created.Id}", json))!;
}

static async Task<string> Ok(HttpResponseMessage response)
{
    var body = await response.Content.ReadAsStringAsync();
    return response.IsSuccessStatusCode ? body : throw new InvalidOperationException($"{(int)response.StatusCode}: {body}");
}

static int Report(string dir)
{
    var ok = true;
    var goals = new List<string>();
    Console.WriteLine($"{"concurrency",11} | {"AspireTune items/s",18} | {"promptfoo items/s",17} | {"ratio",6} | {"AspireTune CPU ms/item",22} | {"errors (ours/theirs)",20}");
    Console.WriteLine(new string('-', 110));
    foreach (var file in Directory.GetFiles(dir, "aspiretune-*.json").OrderBy(f => int.Parse(Path.GetFileNameWithoutExtension(f)["aspiretune-".Length..], CultureInfo.InvariantCulture)))
    {
        var ours = JsonNode.Parse(File.ReadAllText(file))!;
        var concurrency = ours["concurrency"]!.GetValue<int>();
        var theirsFile = Path.Combine(dir, $"promptfoo-{concurrency}.json");
        var theirs = JsonNode.Parse(File.ReadAllText(theirsFile))!["results"]!["stats"]!;
        var theirItems = theirs["successes"]!.GetValue<int>() + theirs["failures"]!.GetValue<int>() + theirs["errors"]!.GetValue<int>();
        var theirRate = theirItems / (theirs["evaluationDurationMs"]!.GetValue<double>() / 1000);
        var ourRate = ours["itemsPerSecond"]!.GetValue<double>();
        var cpu = ours["cpuMsPerItem"]!.GetValue<double>();
        Console.WriteLine($"{concurrency,11} | {ourRate,18:F1} | {theirRate,17:F1} | {ourRate / theirRate,5:F2}x | {cpu,22:F3} | {ours["errors"]!.GetValue<int>() + " / " + theirs["errors"]!.GetValue<int>(),20}");
        var met = ourRate >= 1.5 * theirRate && cpu < 1;
        ok &= met;
        goals.Add($"concurrency {concurrency}: {(ourRate >= 1.5 * theirRate ? "throughput met" : "throughput NOT met")}, {(cpu < 1 ? "CPU met" : "CPU NOT met")}");
    }
    Console.WriteLine();
    Console.WriteLine("Goal: >= 1.5x promptfoo's items/s and < 1 ms AspireTune CPU per item: " + (ok ? "met" : "not met everywhere"));
    foreach (var goal in goals)
        Console.WriteLine("  " + goal);
    return 0;
}


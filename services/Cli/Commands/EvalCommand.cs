using System.CommandLine;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using AspireTune.Cli.Infrastructure;
using AspireTune.Cli.Promptfoo;
using AspireTune.Contracts.Evaluation;
using AspireTune.Evaluation.Apis;
using AspireTune.Evaluation.Data;
using AspireTune.ServiceDefaults.Security;
using Spectre.Console;

namespace AspireTune.Cli.Commands;

/// <summary>
/// <c>aspiretune eval CONFIG.yaml</c>: a promptfoo configuration run as Evaluation runs. Each provider becomes a
/// model endpoint, each prompt a prompt version (<c>{{$input}}</c>) with one dataset item per test whose input is
/// the prompt rendered with the test's variables and whose metadata carries the test's assertions, checked by the
/// <c>assert</c> scorer. Exit 0 when everything passed (or every <c>--fail-on</c> gate held), 100 on failures.
/// </summary>
public static class EvalCommand
{
    /// <summary>Prefix of the endpoint ids eval registers, kept apart from endpoints registered by hand.</summary>
    private const string EndpointPrefix = "promptfoo.";

    public static Command Create(CliIo io, ConnectionOptions connection)
    {
        var config = new Argument<FileInfo>("config") { Description = "promptfoo configuration (YAML).", DefaultValueFactory = _ => new FileInfo("promptfooconfig.yaml") };
        var gates = new Option<string[]>("--fail-on") { Description = "CI gate (repeat for several): pass-rate<0.9, accuracy<0.8, latency-p95>2000 (ms), cost>1.5 (USD), cost-per-1k>0.2, METRIC[CANDIDATE]<LIMIT, 'X worse-than Y by 0.05'. With gates, only gates decide the exit code.", AllowMultipleArgumentsPerToken = false };
        var grader = new Option<string?>("--grader") { Description = "Provider that grades llm-rubric and embeds for similar (e.g. openai:chat:gpt-4o-mini); overrides defaultTest.options.provider." };
        var repeat = new Option<int?>("--repeat") { Description = "Runs per test (overrides evaluateOptions.repeat)." };
        var output = new Option<FileInfo?>("--output", "-o") { Description = "Also write the results as JSON to this file (default: the config's outputPath)." };
        var command = new Command("eval", "Run a promptfoo configuration (prompts x providers x tests with assertions) on the Evaluation service.")
        {
            config, gates, grader, repeat, output,
        };
        command.SetServiceAction(io, connection, async (c, parse, ct) =>
        {
            PromptfooSuite suite;
            try
            {
                suite = PromptfooReader.Read(Path.GetRelativePath(Environment.CurrentDirectory, parse.GetValue(config)!.FullName));
                if (parse.GetValue(grader) is { } g)
                {
                    var provider = PromptfooReader.ReadProvider(g);
                    suite = suite with { Grading = new GradingSpec(provider, provider) };
                }
            }
            catch (PromptfooConfigException e)
            {
                throw e.ToCli();
            }
            if (parse.GetValue(repeat) is { } r)
                suite = suite with { Repeat = r is >= 1 and <= 100 ? r : throw new CliException("--repeat must be between 1 and 100.", ExitCodes.Usage) };
            var parsedGates = (parse.GetValue(gates) ?? []).Select(Gate.Parse).ToList();
            CheckGrading(suite);

            var report = await RunAsync(io, c, suite, parsedGates, ct);
            var file = parse.GetValue(output)?.FullName ?? (suite.OutputPath is { } o ? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(suite.Path))!, o) : null);
            if (file is not null)
            {
                if (!file.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
                    throw new CliException($"Output '{file}': only JSON output is written (end the name in .json).", ExitCodes.Usage);
                await File.WriteAllTextAsync(file, JsonSerializer.Serialize(report, CliIo.Json), ct);
            }
            if (parse.GetValue(connection.Json))
                io.WriteJson(report);
            else
                Print(io, report, file);
            return report.ExitCode;
        });
        return command;
    }

    /// <summary>What <c>eval --json</c> prints and <c>--output</c> writes.</summary>
    public sealed record EvalReport(string Config, IReadOnlyList<EvalCandidate> Candidates, IReadOnlyList<EvalRow> Results, IReadOnlyList<GateOutcome> Gates,
        int Passed, int Failed, int Errors, int ExitCode, IReadOnlyList<Guid> Runs);

    /// <summary>One prompt x provider: its pass rate with the service's 95% interval, latency and cost.</summary>
    public sealed record EvalCandidate(string Prompt, string Provider, string Endpoint, Guid Run, int Results, int Passed, double PassRate,
        double? PassRateLower, double? PassRateUpper, double? Accuracy, double? LatencyP95Ms, double CostUsd);

    private static void CheckGrading(PromptfooSuite suite)
    {
        foreach (var a in suite.Tests.SelectMany(t => t.Assert))
        {
            var bare = a.Type.StartsWith("not-", StringComparison.Ordinal) ? a.Type[4..] : a.Type;
            if (bare == "llm-rubric" && suite.Grading.Judge is null)
                throw new CliException($"{a.At}: llm-rubric needs a grading provider: set defaultTest.options.provider or pass --grader.", ExitCodes.Usage);
            if (bare == "similar" && suite.Grading.Embedding is null)
                throw new CliException($"{a.At}: similar needs an embedding provider: set defaultTest.options.provider (embedding) or pass --grader.", ExitCodes.Usage);
        }
    }

    private static async Task<EvalReport> RunAsync(CliIo io, ServiceConnection c, PromptfooSuite suite, IReadOnlyList<Gate> gates, CancellationToken ct)
    {
        // 1. Providers (and graders) as model endpoints.
        var endpoints = new Dictionary<ProviderSpec, string>();
        foreach (var provider in suite.Providers)
            endpoints[provider] = await RegisterAsync(c, provider, EndpointPrefix + Slug(provider.Label), suite.MaxConcurrency, ct);
        string? judge = suite.Grading.Judge is { } j ? await RegisterAsync(c, j, EndpointPrefix + "grader", suite.MaxConcurrency, ct) : null;
        string? embedding = suite.Grading.Embedding is { } e ? (e == suite.Grading.Judge ? judge : await RegisterAsync(c, e, EndpointPrefix + "embedding", suite.MaxConcurrency, ct)) : null;
        var scorer = "assert" + string.Join(",", new[] { judge is null ? null : $"judge={judge}", embedding is null ? null : $"embedding={embedding}" }.OfType<string>()) switch
        {
            "" => "",
            var settings => ":" + settings,
        };

        // 2. Prompts as prompt versions, each with its dataset: one item per test, the prompt rendered with its vars.
        var name = Slug(Path.GetFileNameWithoutExtension(suite.Path));
        var runs = new List<(Guid Id, string Name, PromptSpec Prompt, IReadOnlyList<ProviderSpec> Providers)>();
        foreach (var prompt in suite.Prompts)
        {
            var version = await c.PostAsync<PromptVersionRequest, PromptVersionResponse>("api/evaluation/prompts",
                new PromptVersionRequest
                {
                    Name = $"promptfoo-{Hash(prompt.User + "\u0000" + prompt.System)}",
                    Template = "{{$input}}",
                    System = prompt.System,
                    Description = $"{prompt.Label} (from {suite.Path})",
                }, ct);
            var dataset = await EvaluationCommand.UploadDatasetAsync(c, $"{name}-{version.Name}", Dataset(prompt, suite.Tests), ct);
            // Temperature and max_tokens are per run in the Evaluation service: providers that differ get their own run.
            foreach (var group in suite.Providers.GroupBy(p => (p.Temperature, p.MaxTokens)))
            {
                var run = await c.PostAsync<RunCreateRequest, RunResponse>(EvaluationCommand.Runs, new RunCreateRequest
                {
                    Prompts = [version.Ref],
                    ModelEndpoints = group.Select(p => endpoints[p]).ToList(),
                    Dataset = dataset.Sha256,
                    Scorers = [scorer],
                    Repeats = suite.Repeat,
                    Temperature = group.Key.Temperature,
                    MaxTokens = group.Key.MaxTokens,
                }, ct);
                runs.Add((run.Id, $"{Shorten(prompt.Label, 30)} x {string.Join(", ", group.Select(p => p.Label))}", prompt, group.ToList()));
            }
        }

        // 3. Follow, then read every result back.
        var finished = await EvaluationCommand.FollowAsync(io, c, runs.Select(r => (r.Id, r.Name)).ToList(), ct);
        var rows = new List<EvalRow>();
        var candidates = new List<EvalCandidate>();
        for (var i = 0; i < runs.Count; i++)
        {
            var run = finished[i];
            if (run.Status != RunStatus.Completed)
                throw new CliException($"Run {run.Id} ({runs[i].Name}) {run.Status.ToString().ToLowerInvariant()}: {run.Error}");
            var results = await EvaluationCommand.ResultsAsync(c, run.Id, ct);
            foreach (var provider in runs[i].Providers)
            {
                var endpoint = endpoints[provider];
                var mine = results.Where(x => x.ModelEndpoint == endpoint).Select(x => Row(suite.Tests[x.Item], runs[i].Prompt, provider, x)).ToList();
                rows.AddRange(mine);
                var summary = run.Summaries?.FirstOrDefault(s => s.ModelEndpoint == endpoint);
                var passRate = summary?.Metrics.FirstOrDefault(m => m.Name == "assert");
                candidates.Add(new EvalCandidate(runs[i].Prompt.Label, provider.Label, endpoint, run.Id, mine.Count, mine.Count(m => m.Pass),
                    mine.Count == 0 ? 0 : mine.Count(m => m.Pass) / (double)mine.Count, passRate?.Lower, passRate?.Upper,
                    Gate.Measure("accuracy", mine), Gate.Measure("latency-p95", mine), mine.Sum(m => m.CostUsd)));
            }
        }

        var outcomes = gates.SelectMany(g => g.Evaluate(rows)).ToList();
        var failed = rows.Count(r => !r.Pass && r.Error is null);
        var errors = rows.Count(r => r.Error is not null);
        var exit = gates.Count > 0 ? (outcomes.All(o => o.Passed) ? ExitCodes.Ok : ExitCodes.GateFailed) : (failed + errors > 0 ? ExitCodes.GateFailed : ExitCodes.Ok);
        return new EvalReport(suite.Path, candidates, rows, outcomes, rows.Count(r => r.Pass), failed, errors, exit, runs.Select(r => r.Id).ToList());
    }

    private static async Task<string> RegisterAsync(ServiceConnection c, ProviderSpec provider, string id, int concurrency, CancellationToken ct)
    {
        var request = new ModelEndpointRequest
        {
            Id = id,
            Kind = provider.BaseUrl is { } url && new Uri(url).Host == "api.openai.com" ? EndpointKind.OpenAI : EndpointKind.OpenAICompatible,
            // AspireTune's own models: its /v1 API, called with the service account key when authentication is on.
            BaseUrl = provider.AspireTune ? c.BaseUrl + "/v1" : provider.BaseUrl,
            Model = provider.Model,
            ApiKeySecret = provider.AspireTune ? ServiceAccountHandler.ConfigurationKey : SecretFor(c, provider.ApiKeyVariable),
            InputPricePerMillion = provider.InputPricePerMillion,
            OutputPricePerMillion = provider.OutputPricePerMillion,
            // evaluateOptions.maxConcurrency: promptfoo's limit on calls in flight, here per endpoint.
            MaxConcurrency = concurrency,
        };
        await c.PutAsync<ModelEndpointRequest, ModelEndpointResponse>($"api/evaluation/models/{Uri.EscapeDataString(id)}", request, ct);
        return id;
    }

    /// <summary>
    /// Evaluation resolves keys only from its secrets section: the provider's key is <c>Evaluation:Secrets:VARIABLE</c>.
    /// In process it is copied there from this process's environment; a deployment (<c>--url</c>) needs it configured
    /// itself, e.g. as the environment variable <c>Evaluation__Secrets__OPENAI_API_KEY</c>.
    /// </summary>
    private static string? SecretFor(ServiceConnection c, string? variable)
    {
        if (variable is null)
            return null;
        var name = "Evaluation:Secrets:" + variable;
        if (c.Host is { } host && Environment.GetEnvironmentVariable(variable) is { Length: > 0 } value)
            host.Configuration[name] = value;
        return name;
    }

    /// <summary>The dataset of one prompt: item i is test i, its input the rendered prompt, its metadata the assertions.</summary>
    private static byte[] Dataset(PromptSpec prompt, IReadOnlyList<TestSpec> tests)
    {
        using var buffer = new MemoryStream();
        foreach (var test in tests)
        {
            var input = NunjucksTemplate.Render(prompt.User, test.Vars);
            if (string.IsNullOrWhiteSpace(input))
                throw new CliException($"{test.At}: prompt '{prompt.Label}' renders empty for this test.", ExitCodes.Usage);
            var item = new DatasetLine(input, new AssertedItemMetadata
            {
                Assert = test.Assert.Select(a => new ItemAssertion { Type = a.Type, Value = RenderValue(a.Value, test.Vars), Threshold = a.Threshold }).ToList(),
                Vars = test.Vars,
                Description = test.Description,
                Test = test.Index,
            });
            JsonSerializer.Serialize(buffer, item, CliIo.JsonLines);
            buffer.WriteByte((byte)'\n');
        }
        return buffer.ToArray();
    }

    /// <summary>One line of an Evaluation dataset as this command writes it.</summary>
    private sealed record DatasetLine(string Input, AssertedItemMetadata Metadata);

    private static JsonElement? RenderValue(JsonElement? value, IReadOnlyDictionary<string, string> vars) => value switch
    {
        { ValueKind: JsonValueKind.String } s => JsonSerializer.SerializeToElement(NunjucksTemplate.Render(s.GetString()!, vars)),
        { ValueKind: JsonValueKind.Array } list => JsonSerializer.SerializeToElement(list.EnumerateArray()
            .Select(v => v.ValueKind == JsonValueKind.String ? JsonSerializer.SerializeToElement(NunjucksTemplate.Render(v.GetString()!, vars)) : v).ToList()),
        _ => value,
    };

    // Types that check the answer itself (for "accuracy"): every type but latency, cost and the JSON format checks.
    private static readonly HashSet<string> FormatOrBudget = ["latency", "cost", "is-json", "contains-json"];

    private static EvalRow Row(TestSpec test, PromptSpec prompt, ProviderSpec provider, EvaluationItemResult r)
    {
        var scores = r.Scores ?? new Dictionary<string, double>();
        var failedTypes = scores.Where(s => s.Key.StartsWith("assert.", StringComparison.Ordinal) && s.Value < 1).Select(s => s.Key[7..]).ToList();
        var quality = test.Assert.Select(a => a.Type).Where(t => !FormatOrBudget.Contains(t.StartsWith("not-", StringComparison.Ordinal) ? t[4..] : t)).Distinct().ToList();
        var error = r.Error ?? r.ScoreErrors;
        var pass = r.Error is null && r.ScoreErrors is null && scores.GetValueOrDefault("assert") == 1;
        return new EvalRow(test.Index, test.Description, test.Vars, prompt.Label, provider.Label, r.Repeat, pass,
            r.Error is null && quality.All(t => scores.GetValueOrDefault("assert." + t) == 1), quality.Count > 0,
            r.Output, error, failedTypes, r.LatencyS * 1000, r.CostUsd);
    }

    private static void Print(CliIo io, EvalReport report, string? file)
    {
        var table = CliIo.Table("test", "prompt", "provider", "result", "output", "failed");
        foreach (var r in report.Results.OrderBy(r => r.Test).ThenBy(r => r.Prompt).ThenBy(r => r.Provider).ThenBy(r => r.Repeat))
            table.AddRow(Markup.Escape(Shorten(r.Description ?? string.Join(", ", r.Vars.Select(v => $"{v.Key}={v.Value}")), 50)), Markup.Escape(Shorten(r.Prompt, 30)), Markup.Escape(r.Provider),
                r.Error is not null ? "[red]ERROR[/]" : r.Pass ? "[green]PASS[/]" : "[red]FAIL[/]",
                Markup.Escape(EvaluationCommand.Shorten(r.Output ?? "", 60)), Markup.Escape(r.Error ?? string.Join(", ", r.FailedAssertions)));
        io.Write(table);

        var summary = CliIo.Table("prompt", "provider", "pass rate", "95% CI", "accuracy", "p95 ms", "cost USD", "run");
        foreach (var k in report.Candidates)
            summary.AddRow(Markup.Escape(Shorten(k.Prompt, 30)), Markup.Escape(k.Provider), $"{k.Passed}/{k.Results} ({k.PassRate.ToString("P1", CultureInfo.InvariantCulture)})",
                k.PassRateLower is { } lo && k.PassRateUpper is { } hi ? $"{lo.ToString("P1", CultureInfo.InvariantCulture)}-{hi.ToString("P1", CultureInfo.InvariantCulture)}" : "",
                k.Accuracy?.ToString("P1", CultureInfo.InvariantCulture) ?? "", k.LatencyP95Ms?.ToString("0", CultureInfo.InvariantCulture) ?? "",
                k.CostUsd.ToString("0.######", CultureInfo.InvariantCulture), k.Run.ToString());
        io.Write(summary);
        foreach (var g in report.Gates)
            io.Out.MarkupLineInterpolated($"{(g.Passed ? "[green]gate ok  [/]" : "[red]gate FAIL[/]")} {g.Gate}: {g.Detail}");
        io.Out.MarkupLineInterpolated($"[bold]{report.Passed} passed, {report.Failed} failed, {report.Errors} errors[/] (exit {report.ExitCode}){(file is null ? "" : $"; results in {file}")}");
    }

    private static string Slug(string text)
    {
        var slug = string.Concat(text.Select(ch => char.IsAsciiLetterOrDigit(ch) || ch is '.' or '_' or '-' ? ch : '-')).Trim('-', '.', '_');
        return slug.Length == 0 ? "x" : slug.Length > 80 ? slug[..80] : slug;
    }

    private static string Hash(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..12];

    private static string Shorten(string text, int length) => EvaluationCommand.Shorten(text, length);
}

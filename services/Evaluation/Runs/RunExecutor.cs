using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using AspireTune.Contracts.Common;
using AspireTune.Contracts.Evaluation;
using AspireTune.Evaluation.Data;
using AspireTune.Evaluation.Datasets;
using AspireTune.Evaluation.Endpoints;
using AspireTune.Evaluation.Prompts;
using AspireTune.Evaluation.Retrieval;
using AspireTune.Evaluation.Scoring;
using AspireTune.ServiceDefaults.Artifacts;
using AspireTune.ServiceDefaults.Messaging;
using AspireTune.ServiceDefaults.Work;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Microsoft.SemanticKernel;

namespace AspireTune.Evaluation.Runs;

/// <summary>
/// Executes one run: every prompt x endpoint x item x repeat not yet stored, endpoints in parallel and each at
/// its own concurrency; then the summaries, the per-item JSONL artifact and the <c>EvaluationCompleted</c> event.
/// </summary>
public sealed class RunExecutor(
    EvaluationDbContext db,
    IArtifactStore artifacts,
    ModelGateway gateway,
    ResultWriter writer,
    RetrievalClient retrieval,
    ResponseCache cache,
    TokenCounter tokens,
    LabelLikelihood likelihood,
    IOptions<EvaluationOptions> options,
    ILogger<RunExecutor> logger)
{
    public async Task ExecuteAsync(WorkLease lease, CancellationToken stopping)
    {
        var runId = lease.Id;
        var cancel = lease.Token;
        var run = await db.Runs.FirstOrDefaultAsync(r => r.Id == runId, stopping);
        if (run is null || run.Status is RunStatus.Completed or RunStatus.Failed or RunStatus.Cancelled)
            return;
        if (run.CancelledBy is not null)
        {
            await FinishCancelledAsync(run);
            return;
        }

        // Part of the trace that created the run (an experiment's, under Aspire), though a worker loop picked it up.
        using var activity = EvaluationTelemetry.ActivitySource.StartActivity("evaluation.run", ActivityKind.Internal, run.TraceParent);
        activity?.SetTag("aspiretune.run_id", runId);
        activity?.SetTag("aspiretune.experiment_id", run.ExperimentId);
        using var logScope = logger.BeginScope(new Dictionary<string, object?> { ["RunId"] = runId, ["ExperimentId"] = run.ExperimentId });
        EvaluationTelemetry.ActiveRuns.Add(1);
        try
        {
            run.Status = RunStatus.Running;
            run.StartedAt ??= DateTimeOffset.UtcNow;
            await db.SaveChangesAsync(stopping);
            await ExecuteCoreAsync(run, cancel, stopping);
        }
        catch (OperationCanceledException) when (lease.Reason == WorkStop.CancelRequested && !stopping.IsCancellationRequested)
        {
            await writer.FlushAsync(stopping);
            await FinishCancelledAsync(run);
        }
        catch (RunFailedException e)
        {
            await FailAsync(run.Id, e.Message, stopping);
        }
        finally
        {
            EvaluationTelemetry.ActiveRuns.Add(-1);
        }
    }

    private async Task ExecuteCoreAsync(RunEntity run, CancellationToken cancel, CancellationToken stopping)
    {
        var spec = run.Spec;
        byte[] content;
        try
        {
            content = await artifacts.ReadVerifiedAsync(RunFactory.DatasetRef(run), stopping);
        }
        catch (Exception e) when (e is ArtifactNotFoundException or ArtifactCorruptException)
        {
            throw new RunFailedException(e.Message);
        }
        var items = DatasetReader.Parse(content);

        var prompts = new List<CompiledPrompt>();
        foreach (var reference in spec.Prompts)
        {
            var (version, problem) = await PromptResolver.ResolveAsync(db, reference, stopping);
            prompts.Add(PromptTemplates.Compile(version ?? throw new RunFailedException(problem!)));
        }
        var endpointIds = spec.ModelEndpoints.Concat(spec.Scorers.SelectMany(s => Scorer.Parse(s).Endpoints)).Distinct().ToList();
        var endpoints = await db.ModelEndpoints.AsNoTracking().Where(e => endpointIds.Contains(e.Id)).ToDictionaryAsync(e => e.Id, stopping);
        foreach (var missing in endpointIds.Where(id => !endpoints.ContainsKey(id)))
            throw new RunFailedException($"Model endpoint '{missing}' was deleted after the run was created.");

        JudgeCall judge = async (endpointId, system, user, ct) =>
            (await gateway.CompleteAsync(endpoints[endpointId], new ModelCall(system, user, 0, 16), 0, ct)).Output;
        EmbedCall embed = (endpointId, texts, ct) => gateway.EmbedAsync(endpoints[endpointId], texts, ct);
        var scorers = spec.Scorers.Select(s => Scorer.Parse(s, judge, spec.JudgeRubric, embed)).ToList();
        // The task's labels: the run's label set when it names one, else the labels the dataset expects.
        var taskLabels = spec.Labels?.ToList() ?? LabelChoices.From(items);
        foreach (var label in scorers.OfType<LabelScorer>())
            label.SetLabels(taskLabels);

        var done = (await db.ItemResults.Where(r => r.RunId == run.Id).Select(r => new { r.Pair, r.Item, r.Repeat }).ToListAsync(stopping))
            .Select(r => Key(r.Pair, r.Item, r.Repeat)).ToHashSet();
        if (done.Count > 0)
            logger.LogInformation("Run {RunId}: {Done} of {Total} calls already stored, resuming", run.Id, done.Count, run.TotalCalls);

        // Label-likelihood scores every task label; the prompt leaves room for the longest after it.
        var labels = scorers.OfType<LabelLikelihoodScorer>().Any() ? taskLabels : [];
        // Constrained answers are one of the task's labels (guided_choice on the served model).
        List<string>? choices = spec.ConstrainToLabels ? taskLabels : null;
        var context = new RunContext(run.Id, spec, items, prompts, scorers, new ConcurrentDictionary<int, Lazy<Task<RetrievedContext>>>(), labels)
        {
            Choices = choices is { Count: > 0 } ? choices : null,
        };
        var perEndpoint = spec.ModelEndpoints.Select((id, e) => Task.Run(() => RunEndpointAsync(context, endpoints[id], e, done, cancel), CancellationToken.None));
        await Task.WhenAll(perEndpoint);
        await writer.FlushAsync(stopping);

        await CompleteAsync(run, context, stopping);
    }

    private async Task RunEndpointAsync(RunContext run, ModelEndpointEntity endpoint, int endpointIndex, HashSet<long> done, CancellationToken cancel)
    {
        var work = new List<Work>();
        for (var p = 0; p < run.Prompts.Count; p++)
            foreach (var item in run.Items)
                for (var r = 0; r < run.Spec.Repeats; r++)
                    if (!done.Contains(Key(Pair(run, p, endpointIndex), item.Index, r)))
                        work.Add(new Work(p, item, r));

        // Prompts without retrieval render now, so one query per 500 calls checks the cache instead of one per call.
        if (options.Value.ResponseCache)
        {
            var keys = new List<string>();
            foreach (var w in work.Where(w => w.Item.Error is null && !run.Prompts[w.Prompt].UsesRetrieval))
            {
                try
                {
                    w.Fitted = await FitAsync(run, endpoint, run.Prompts[w.Prompt], w.Item.Input!, null, cancel);
                }
                catch (Exception e) when (e is KernelException or ModelCallException or PromptTooLongException)
                {
                    continue; // rendered again when the item is processed, where the error becomes the item's result
                }
                keys.Add(ModelGateway.CacheKey(endpoint, Call(run, w.Fitted), Variant(run.Spec, w.Repeat)));
            }
            await cache.PrefetchAsync(keys, cancel);
        }

        var parallel = new ParallelOptions { MaxDegreeOfParallelism = endpoint.MaxConcurrency, CancellationToken = cancel };
        await Parallel.ForEachAsync(work, parallel, async (w, ct) =>
            writer.Enqueue(await ProcessAsync(run, endpoint, Pair(run, w.Prompt, endpointIndex), run.Prompts[w.Prompt], w, ct)));
    }

    private static ModelCall Call(RunContext run, FittedPrompt prompt) => new(prompt.System, prompt.User, run.Spec.Temperature, run.Spec.MaxTokens) { Choices = run.Choices };

    /// <summary>Output budget assumed when a run sets no max_tokens (the served models' chat default).</summary>
    private const int DefaultOutputBudget = 256;

    /// <summary>The prompt rendered to fit the endpoint's context minus the run's output budget.</summary>
    private async Task<FittedPrompt> FitAsync(RunContext run, ModelEndpointEntity endpoint, CompiledPrompt prompt, string input, RetrievedContext? retrieved, CancellationToken ct)
    {
        var window = await tokens.WindowAsync(endpoint, ct);
        // Room after the prompt for the answer, and for the longest label when labels are scored by likelihood.
        var budget = window.ContextLength - Math.Max(run.Spec.MaxTokens ?? DefaultOutputBudget, LabelLikelihood.Reserve(run.Labels));
        return await PromptFitter.FitAsync(prompt, input, retrieved, budget, (system, user, c) => new ValueTask<int>(tokens.CountAsync(endpoint, window, system, user, c)), ct);
    }

    // Repeats must reach the model each time (consistency measures their disagreement), so each repeat has its own key.
    private static int Variant(RunSpec spec, int repeat) => spec.Repeats > 1 ? repeat : 0;

    private async Task<ItemResultEntity> ProcessAsync(RunContext run, ModelEndpointEntity endpoint, int pair, CompiledPrompt prompt, Work work, CancellationToken ct)
    {
        var (item, repeat) = (work.Item, work.Repeat);
        var result = new ItemResultEntity { RunId = run.Id, Pair = pair, Item = item.Index, Repeat = repeat };
        if (item.Error is not null)
        {
            result.Error = item.Error;
            return result;
        }
        try
        {
            var fitted = work.Fitted;
            if (fitted is null)
            {
                RetrievedContext? retrieved = null;
                if (prompt.UsesRetrieval && run.Spec.RetrievalCollection is { } collection)
                    retrieved = await run.Retrieved.GetOrAdd(item.Index, _ => new Lazy<Task<RetrievedContext>>(
                        () => retrieval.NeighborsAsync(collection, item.Input!, run.Spec.RetrievalTopK, ct))).Value;
                fitted = await FitAsync(run, endpoint, prompt, item.Input!, retrieved, ct);
            }
            result.ExamplesShown = fitted.ExamplesShown;
            result.ExamplesRetrieved = fitted.ExamplesRetrieved;
            result.InputTruncated = fitted.InputTruncated ? true : null;
            var answer = await gateway.CompleteAsync(endpoint, Call(run, fitted), Variant(run.Spec, repeat), ct);
            result.Output = answer.Output;
            result.LatencyMs = answer.LatencyMs;
            result.InputTokens = answer.InputTokens;
            result.OutputTokens = answer.OutputTokens;
            result.CostUsd = ModelGateway.Cost(endpoint, answer);
            result.Cached = answer.Cached;

            var scores = new ScoreResult();
            string? likely = null;
            if (run.Labels.Count > 0 && item.Expected is not null)
            {
                try
                {
                    likely = await likelihood.ChooseAsync(endpoint, fitted.System, fitted.User, run.Labels, ct);
                }
                catch (ModelCallException e)
                {
                    scores.Errors.Add("label-likelihood: " + e.Message); // the greedy answer still counts
                }
            }
            foreach (var scorer in run.Scorers)
                if (!scorer.NeedsExpected || item.Expected is not null)
                    await scorer.ScoreAsync(new ScoreInput(item.Input!, item.Expected, answer.Output)
                        { Metadata = item.Metadata, LatencyS = answer.LatencyMs / 1000, CostUsd = result.CostUsd, LikelyLabel = likely }, scores, ct);
            result.Scores = scores.Scores;
            result.Predicted = scores.Predicted;
            result.ScoreErrors = scores.Errors.Count == 0 ? null : string.Join("; ", scores.Errors);
        }
        catch (Exception e) when (e is ModelCallException or RetrievalException or KernelException or PromptTooLongException)
        {
            // The item's outcome is this error: recorded in its result and counted in the summary.
            result.Error = e.Message;
        }
        return result;
    }

    private async Task CompleteAsync(RunEntity run, RunContext context, CancellationToken stopping)
    {
        var results = await db.ItemResults.AsNoTracking().Where(r => r.RunId == run.Id)
            .OrderBy(r => r.Pair).ThenBy(r => r.Item).ThenBy(r => r.Repeat).ToListAsync(stopping);
        var spec = context.Spec;
        var summaries = new List<EvaluationSummary>();
        var labelScorer = context.Scorers.OfType<LabelScorer>().Any();
        var seed = BitConverter.ToInt32(run.Id.ToByteArray(), 0);
        for (var p = 0; p < spec.Prompts.Count; p++)
            for (var e = 0; e < spec.ModelEndpoints.Count; e++)
            {
                var pair = Pair(context, p, e);
                summaries.Add(Aggregator.Summarize(spec.Prompts[p], spec.ModelEndpoints[e], seed ^ pair, results.Where(r => r.Pair == pair).ToList(),
                    context.Items, labelScorer, spec.Repeats, options.Value.BootstrapResamples));
            }

        var artifact = await WriteResultsAsync(run, context, results, stopping);
        run.Summaries = summaries;
        run.ResultsArtifact = artifact;
        // The event commits with the status (outbox): it leaves once the run is Completed, and then exactly once.
        db.PublishOnCommit(new EvaluationCompleted
        {
            RunId = run.Id,
            ExperimentId = run.ExperimentId,
            Summaries = summaries,
            Results = artifact,
            CompletedAt = DateTimeOffset.UtcNow,
        });
        run.Status = RunStatus.Completed;
        run.FinishedAt = DateTimeOffset.UtcNow;
        await db.SaveChangesAsync(stopping);
        EvaluationTelemetry.RunsFinished.Add(1, new KeyValuePair<string, object?>("status", "completed"));
        logger.LogInformation("Run {RunId} completed: {Calls} calls, {Errors} errors", run.Id, results.Count, results.Count(r => r.Error is not null));
    }

    private async Task<ArtifactRef> WriteResultsAsync(RunEntity run, RunContext context, List<ItemResultEntity> results, CancellationToken ct)
    {
        using var buffer = new MemoryStream();
        foreach (var r in results)
            EvaluationResultsJsonl.WriteLine(buffer, ToResult(r, context.Items[r.Item], context.Spec));
        buffer.Position = 0;
        return await artifacts.PutAsync(buffer, "evaluation-results", $"{run.Id:N}.jsonl", "application/jsonl", ct);
    }

    /// <summary>One line of the per-item results (also served by <c>GET /api/evaluation/runs/{id}/results</c>).</summary>
    public static EvaluationItemResult ToResult(ItemResultEntity r, DatasetItem item, RunSpec spec) => new()
    {
        Prompt = spec.Prompts[r.Pair / spec.ModelEndpoints.Count],
        ModelEndpoint = spec.ModelEndpoints[r.Pair % spec.ModelEndpoints.Count],
        Item = r.Item,
        Line = item.Line,
        Repeat = r.Repeat,
        Input = item.Input,
        Expected = item.Expected,
        Output = r.Output,
        Predicted = r.Predicted,
        Scores = r.Scores,
        LatencyS = r.LatencyMs / 1000,
        InputTokens = r.InputTokens,
        OutputTokens = r.OutputTokens,
        CostUsd = r.CostUsd,
        Cached = r.Cached,
        Error = r.Error,
        ScoreErrors = r.ScoreErrors,
        ExamplesShown = r.ExamplesShown,
        ExamplesRetrieved = r.ExamplesRetrieved,
        InputTruncated = r.InputTruncated is true,
    };

    private async Task FinishCancelledAsync(RunEntity run)
    {
        await db.Entry(run).ReloadAsync(CancellationToken.None); // CancelledBy was written by the API's request
        // Cancellation is final for the workflow: EvaluationFailed tells a waiting experiment not to wait longer.
        db.PublishOnCommit(new EvaluationFailed
        {
            RunId = run.Id,
            ExperimentId = run.ExperimentId,
            Reason = $"The run was cancelled{(run.CancelledBy is { Length: > 0 } who ? " by " + who : "")}.",
            FailedAt = DateTimeOffset.UtcNow,
        });
        run.Status = RunStatus.Cancelled;
        run.FinishedAt = DateTimeOffset.UtcNow;
        run.Error = "Cancelled.";
        await db.SaveChangesAsync(CancellationToken.None);
        EvaluationTelemetry.RunsFinished.Add(1, new KeyValuePair<string, object?>("status", "cancelled"));
        logger.LogInformation("Run {RunId} cancelled", run.Id);
    }

    /// <summary>Marks the run failed and publishes <c>EvaluationFailed</c>.</summary>
    public async Task FailAsync(Guid runId, string reason, CancellationToken ct)
    {
        db.ChangeTracker.Clear();
        var run = await db.Runs.FirstOrDefaultAsync(r => r.Id == runId, ct);
        if (run is null)
            return;
        db.PublishOnCommit(new EvaluationFailed { RunId = run.Id, ExperimentId = run.ExperimentId, Reason = reason, FailedAt = DateTimeOffset.UtcNow });
        run.Status = RunStatus.Failed;
        run.Error = reason;
        run.FinishedAt = DateTimeOffset.UtcNow;
        await db.SaveChangesAsync(ct);
        EvaluationTelemetry.RunsFinished.Add(1, new KeyValuePair<string, object?>("status", "failed"));
        logger.LogWarning("Run {RunId} failed: {Reason}", runId, reason);
    }

    private static int Pair(RunContext run, int prompt, int endpoint) => prompt * run.Spec.ModelEndpoints.Count + endpoint;

    private static long Key(int pair, int item, int repeat) => ((long)pair << 40) | ((long)item << 8) | (long)repeat;

    private sealed record RunContext(Guid Id, RunSpec Spec, List<DatasetItem> Items, List<CompiledPrompt> Prompts, List<Scorer> Scorers,
        ConcurrentDictionary<int, Lazy<Task<RetrievedContext>>> Retrieved, List<string> Labels)
    {
        /// <summary>The strings every answer must be one of (<c>ConstrainToLabels</c>); null when answers are free.</summary>
        public IReadOnlyList<string>? Choices { get; init; }
    }

    /// <summary>One call to make; prompts without retrieval are rendered ahead (for the cache prefetch).</summary>
    private sealed class Work(int prompt, DatasetItem item, int repeat)
    {
        public int Prompt { get; } = prompt;
        public DatasetItem Item { get; } = item;
        public int Repeat { get; } = repeat;
        public FittedPrompt? Fitted { get; set; }
    }

    private sealed class RunFailedException(string message) : Exception(message);
}

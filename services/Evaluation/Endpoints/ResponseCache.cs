using System.Collections.Concurrent;
using System.Threading.Channels;
using AspireTune.Evaluation.Data;
using AspireTune.Evaluation.Runs;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.Evaluation.Endpoints;

/// <summary>
/// Model answers kept in the service database, keyed by <see cref="ModelGateway.CacheKey"/>. Lookups from
/// concurrent calls are gathered into one query (a query per call would cost more CPU than the call itself);
/// new answers are written by the <see cref="ResultWriter"/> in the batches of item results.
/// </summary>
public sealed class ResponseCache(IServiceScopeFactory scopes, ResultWriter writer) : BackgroundService
{
    private const int MaxBatch = 500;
    private readonly Channel<(string Key, TaskCompletionSource<ModelAnswer?> Answer)> _lookups =
        Channel.CreateUnbounded<(string, TaskCompletionSource<ModelAnswer?>)>(new UnboundedChannelOptions { SingleReader = true });

    // Answers written since start: found here before they reach the database, and without a query after.
    private readonly ConcurrentDictionary<string, ModelAnswer> _recent = new(StringComparer.Ordinal);

    // Keys a prefetch found absent: answered as misses without a query (each once).
    private readonly ConcurrentDictionary<string, byte> _absent = new(StringComparer.Ordinal);

    public Task<ModelAnswer?> GetAsync(string key, CancellationToken ct)
    {
        if (_recent.TryGetValue(key, out var known))
            return Task.FromResult<ModelAnswer?>(known);
        if (_absent.TryRemove(key, out _))
            return Task.FromResult<ModelAnswer?>(null);
        var answer = new TaskCompletionSource<ModelAnswer?>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_lookups.Writer.TryWrite((key, answer)))
            return Task.FromResult<ModelAnswer?>(null); // stopping: behave as a miss
        return answer.Task.WaitAsync(ct);
    }

    /// <summary>
    /// Looks up many keys at once (a run knows most of its calls before making them), so that the calls
    /// themselves wait for no query: found answers are kept in memory, absent keys are remembered as misses.
    /// </summary>
    public async Task PrefetchAsync(IEnumerable<string> keys, CancellationToken ct)
    {
        var unknown = keys.Where(k => !_recent.ContainsKey(k)).Distinct(StringComparer.Ordinal).ToList();
        if (unknown.Count == 0)
            return;
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<EvaluationDbContext>();
        foreach (var chunk in unknown.Chunk(MaxBatch))
        {
            var found = await db.CachedResponses.AsNoTracking().Where(c => chunk.Contains(c.Key)).ToDictionaryAsync(c => c.Key, ct);
            foreach (var key in chunk)
            {
                if (found.TryGetValue(key, out var c))
                    _recent.TryAdd(key, new ModelAnswer(c.Output, c.InputTokens, c.OutputTokens, c.LatencyMs, true));
                else
                    _absent.TryAdd(key, 0);
            }
        }
    }

    public void Add(string key, ModelAnswer answer)
    {
        if (!_recent.TryAdd(key, answer))
            return;
        writer.Enqueue(new CachedResponseEntity
        {
            Key = key,
            Output = answer.Output,
            InputTokens = answer.InputTokens,
            OutputTokens = answer.OutputTokens,
            LatencyMs = answer.LatencyMs,
            CreatedAt = DateTimeOffset.UtcNow,
        });
        if (_recent.Count > 200_000)
            _recent.Clear(); // bounded memory; older answers are still in the database
        if (_absent.Count > 200_000)
            _absent.Clear();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var batch = new List<(string Key, TaskCompletionSource<ModelAnswer?> Answer)>(MaxBatch);
        try
        {
            while (await _lookups.Reader.WaitToReadAsync(stoppingToken))
            {
                batch.Clear();
                while (batch.Count < MaxBatch && _lookups.Reader.TryRead(out var lookup))
                    batch.Add(lookup);
                try
                {
                    var keys = batch.Select(l => l.Key).Distinct().ToList();
                    await using var scope = scopes.CreateAsyncScope();
                    var db = scope.ServiceProvider.GetRequiredService<EvaluationDbContext>();
                    var found = await db.CachedResponses.AsNoTracking().Where(c => keys.Contains(c.Key)).ToDictionaryAsync(c => c.Key, stoppingToken);
                    foreach (var (key, answer) in batch)
                        answer.TrySetResult(found.TryGetValue(key, out var c) ? new ModelAnswer(c.Output, c.InputTokens, c.OutputTokens, c.LatencyMs, true) : null);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    foreach (var (_, answer) in batch)
                        answer.TrySetException(e);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // host stopping: pending lookups are cancelled below
        }
        _lookups.Writer.TryComplete();
        foreach (var (_, answer) in batch)
            answer.TrySetCanceled(stoppingToken);
        while (_lookups.Reader.TryRead(out var left))
            left.Answer.TrySetCanceled(stoppingToken);
    }
}

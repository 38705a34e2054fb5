using System.Threading.Channels;
using AspireTune.Evaluation.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace AspireTune.Evaluation.Runs;

/// <summary>
/// The one writer of item results and cached answers: batches them into transactions (a transaction per call
/// would dominate the CPU cost of a run), drains what is queued when the host stops, and lets a run wait until
/// everything it produced is stored (<see cref="FlushAsync"/>).
/// </summary>
public sealed class ResultWriter(IServiceScopeFactory scopes, IOptions<EvaluationOptions> options, ILogger<ResultWriter> logger) : BackgroundService
{
    // Not SingleReader: that implementation cannot count, and the group commit needs the count.
    private readonly Channel<object> _queue = Channel.CreateUnbounded<object>();
    private Exception? _lastFailure;

    public void Enqueue(ItemResultEntity result)
    {
        if (!_queue.Writer.TryWrite(result))
            throw new OperationCanceledException("The result writer is stopping.");
    }

    internal void Enqueue(CachedResponseEntity answer) => _queue.Writer.TryWrite(answer);

    /// <summary>Completes when everything enqueued before the call is stored; throws if a batch failed since the last flush.</summary>
    public async Task FlushAsync(CancellationToken ct)
    {
        var marker = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_queue.Writer.TryWrite(marker))
            throw new OperationCanceledException("The result writer is stopping.");
        await marker.Task.WaitAsync(ct);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _queue.Writer.TryComplete();
        await base.StopAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var results = new List<ItemResultEntity>();
        var answers = new List<CachedResponseEntity>();
        var markers = new List<TaskCompletionSource>();
        var batchSize = options.Value.ResultBatchSize;
        // Not bound to stoppingToken: on stop the queue is completed and drained, so finished calls are kept.
        while (await _queue.Reader.WaitToReadAsync(CancellationToken.None))
        {
            // Group commit: a slow run (a few calls per second) would otherwise pay a transaction per call.
            if (_queue.Reader.Count < batchSize && !_queue.Reader.Completion.IsCompleted)
                await Task.Delay(options.Value.ResultFlushMilliseconds, CancellationToken.None);
            while (results.Count + answers.Count < batchSize && _queue.Reader.TryRead(out var next))
            {
                switch (next)
                {
                    case ItemResultEntity r: results.Add(r); break;
                    case CachedResponseEntity a: answers.Add(a); break;
                    case TaskCompletionSource m: markers.Add(m); break;
                }
                if (markers.Count > 0)
                    break; // a flush waits only for what came before it
            }
            if (results.Count + answers.Count > 0)
            {
                try
                {
                    await SaveAsync(results, answers);
                }
                catch (Exception e) when (e is DbUpdateException or InvalidOperationException or System.Data.Common.DbException)
                {
                    // The run that flushes next fails with this error, so nothing is lost silently.
                    logger.LogError(e, "Could not store {Results} item results and {Answers} cached answers", results.Count, answers.Count);
                    _lastFailure = e;
                }
                results.Clear();
                answers.Clear();
            }
            foreach (var marker in markers)
            {
                if (Interlocked.Exchange(ref _lastFailure, null) is { } failure)
                    marker.TrySetException(new InvalidOperationException("Item results could not be stored: " + failure.Message, failure));
                else
                    marker.TrySetResult();
            }
            markers.Clear();
        }
    }

    private async Task SaveAsync(List<ItemResultEntity> results, List<CachedResponseEntity> answers)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<EvaluationDbContext>();
        db.ChangeTracker.AutoDetectChangesEnabled = false;
        db.ItemResults.AddRange(results);
        if (answers.Count > 0)
        {
            var keys = answers.Select(a => a.Key).ToList();
            var stored = (await db.CachedResponses.Where(c => keys.Contains(c.Key)).Select(c => c.Key).ToListAsync()).ToHashSet(StringComparer.Ordinal);
            db.CachedResponses.AddRange(answers.Where(a => stored.Add(a.Key)));
        }
        await db.SaveChangesAsync();
    }
}

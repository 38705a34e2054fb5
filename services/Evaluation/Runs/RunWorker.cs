using AspireTune.Evaluation.Data;
using AspireTune.ServiceDefaults.Work;

namespace AspireTune.Evaluation.Runs;

/// <summary>
/// Executes runs from the durable run queue (<see cref="WorkQueue{TContext, T}"/> on the <c>runs</c> table), at most
/// <see cref="EvaluationOptions.MaxConcurrentRuns"/> at once. Runs left Queued or Running by a previous process are
/// claimed like any other (at once when this process has the previous one's worker identity); results already
/// stored are skipped, so a restart costs only the calls that were in flight.
/// </summary>
public sealed class RunWorker(WorkQueue<EvaluationDbContext, RunEntity> queue, IServiceScopeFactory scopes, IHostApplicationLifetime lifetime, ILogger<RunWorker> logger)
    : WorkQueueWorker<EvaluationDbContext, RunEntity>(queue, scopes, lifetime, logger)
{
    public static readonly WorkQueueDefinition<RunEntity> Definition = new()
    {
        Pending = r => r.Status == RunStatus.Queued || r.Status == RunStatus.Running,
        CancelRequested = r => r.CancelledBy != null,
    };

    protected override async Task ProcessAsync(WorkLease lease, CancellationToken stopping)
    {
        await using var scope = Scopes.CreateAsyncScope();
        await scope.ServiceProvider.GetRequiredService<RunExecutor>().ExecuteAsync(lease, stopping);
    }

    protected override async Task OnUnexpectedAsync(Guid id, Exception error)
    {
        await using var scope = Scopes.CreateAsyncScope();
        await scope.ServiceProvider.GetRequiredService<RunExecutor>().FailAsync(id, $"Unexpected error: {error.Message}", CancellationToken.None);
    }
}

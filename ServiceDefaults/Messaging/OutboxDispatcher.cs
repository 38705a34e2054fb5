using System.ComponentModel.DataAnnotations;
using System.Diagnostics;
using System.Text.Json;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace AspireTune.ServiceDefaults.Messaging;

/// <summary>Outbox delivery settings (section <c>Outbox</c>).</summary>
public sealed class OutboxOptions
{
    public const string SectionName = "Outbox";

    /// <summary>How often the dispatcher looks for undelivered rows when no save woke it, in milliseconds. Default 1000.</summary>
    [Range(10, 600_000)]
    public int PollIntervalMs { get; set; } = 1000;

    /// <summary>Rows a dispatcher locks and delivers at a time. Default 100.</summary>
    [Range(1, 10_000)]
    public int BatchSize { get; set; } = 100;

    /// <summary>How long a dispatcher's lock on a batch lasts before another replica may deliver it, in seconds. Default 30.</summary>
    [Range(1, 3600)]
    public int LockSeconds { get; set; } = 30;

    /// <summary>How long one publish may wait for the broker's confirm before the batch is retried, in seconds. Default 30.</summary>
    [Range(1, 3600)]
    public int ConfirmTimeoutSeconds { get; set; } = 30;

    /// <summary>
    /// In-memory transport only (the embedded host): rows delivered this long before a restart are delivered again at
    /// start, because what the in-memory queues held died with the process; receivers' inboxes drop what they had
    /// already handled. In minutes. Default 60.
    /// </summary>
    [Range(0, 10_080)]
    public int RedeliverAfterRestartMinutes { get; set; } = 60;

    /// <summary>Delivered rows are deleted after this many hours. Default 24.</summary>
    [Range(1, 8760)]
    public int RetentionHours { get; set; } = 24;
}

/// <summary>
/// Delivers one database's outbox: rows in sequence order, each published (or sent) with its own message id and
/// awaited until the broker confirms it, then marked delivered. Replicas on one database lock batches, so a row
/// is delivered by one dispatcher at a time; a crash after the confirm and before the mark delivers that row
/// again, with the same message id, which receivers' inboxes drop. Woken by every save that wrote outbox rows.
/// </summary>
public sealed class OutboxDispatcher<TContext>(
    IServiceScopeFactory scopes,
    IServiceProvider services,
    OutboxSignal<TContext> signal,
    IHostApplicationLifetime lifetime,
    IOptions<OutboxOptions> options,
    ILogger<OutboxDispatcher<TContext>> logger) : BackgroundService
    where TContext : DbContext
{
    private static readonly ActivitySource Source = new("AspireTune.Outbox");
    private readonly string _name = $"{Environment.MachineName}/{Environment.ProcessId}/{Guid.NewGuid().ToString("N")[..8]}";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!await HostStarted.WaitAsync(lifetime, stoppingToken))
            return;
        if (services.GetService<IBus>() is not { } bus)
            return; // a tool's host without a bus: nothing to deliver to
        var o = options.Value;
        var poll = TimeSpan.FromMilliseconds(o.PollIntervalMs);
        var startedAt = DateTimeOffset.UtcNow;
        var nextCleanup = startedAt;
        var redelivered = bus.Address.Scheme == "loopback" && o.RedeliverAfterRestartMinutes > 0 ? false : true;
        var failing = false;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (!redelivered)
                {
                    await RedeliverAsync(startedAt, TimeSpan.FromMinutes(o.RedeliverAfterRestartMinutes), stoppingToken);
                    redelivered = true;
                }
                var delivered = await DeliverBatchAsync(bus, o, stoppingToken);
                if (failing)
                    logger.LogInformation("{Context} outbox delivers again", typeof(TContext).Name);
                failing = false;
                if (DateTimeOffset.UtcNow >= nextCleanup)
                {
                    await CleanupAsync(TimeSpan.FromHours(o.RetentionHours), stoppingToken);
                    nextCleanup = DateTimeOffset.UtcNow.AddHours(1);
                }
                if (delivered == o.BatchSize)
                    continue;
                await signal.WaitAsync(poll, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // Broker or database away: the rows wait; try again at the next poll.
                if (!failing)
                    logger.LogWarning(e, "{Context} outbox delivery failed; retrying every {Poll} ms", typeof(TContext).Name, o.PollIntervalMs);
                failing = true;
                await Task.Delay(poll, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
            }
        }
    }

    private async Task<int> DeliverBatchAsync(IBus bus, OutboxOptions o, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<TContext>();
        var rows = db.Set<OutboxMessage>();
        var now = DateTimeOffset.UtcNow;
        var name = _name;
        var free = rows.Where(m => m.DeliveredAt == null && (m.LockedUntil == null || m.LockedUntil < now || m.LockedBy == name));
        var sequences = await free.OrderBy(m => m.Sequence).Select(m => m.Sequence).Take(o.BatchSize).ToListAsync(ct);
        if (sequences.Count == 0)
            return 0;
        DateTimeOffset? until = now.AddSeconds(o.LockSeconds);
        await free.Where(m => sequences.Contains(m.Sequence))
            .ExecuteUpdateAsync(s => s.SetProperty(m => m.LockedBy, name).SetProperty(m => m.LockedUntil, until), ct);
        var batch = await rows.AsNoTracking().Where(m => sequences.Contains(m.Sequence) && m.LockedBy == name && m.DeliveredAt == null)
            .OrderBy(m => m.Sequence).ToListAsync(ct);
        foreach (var row in batch)
        {
            // A broker that neither confirms nor refuses (blocked, refusing this channel) must not hold the outbox forever.
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(o.ConfirmTimeoutSeconds));
            try
            {
                await DeliverAsync(bus, row, timeout.Token);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                throw new TimeoutException($"The broker did not confirm message {row.MessageId} within {o.ConfirmTimeoutSeconds} s.");
            }
            DateTimeOffset? delivered = DateTimeOffset.UtcNow;
            await rows.Where(m => m.Sequence == row.Sequence)
                .ExecuteUpdateAsync(s => s.SetProperty(m => m.DeliveredAt, delivered).SetProperty(m => m.LockedBy, (string?)null).SetProperty(m => m.LockedUntil, (DateTimeOffset?)null), CancellationToken.None);
        }
        return batch.Count;
    }

    private static async Task DeliverAsync(IBus bus, OutboxMessage row, CancellationToken ct)
    {
        var type = Type.GetType(row.MessageType, throwOnError: true)!;
        var message = JsonSerializer.Deserialize(row.Body, type, OutboxExtensions.Json)!;
        // The message continues the trace of the request or consumer that wrote it.
        using var activity = row.TraceParent is null ? null
            : Source.StartActivity("outbox deliver", ActivityKind.Internal, row.TraceParent) ?? new Activity("outbox deliver").SetParentId(row.TraceParent).Start();
        if (row.Destination is null)
            await bus.Publish(message, type, context => context.MessageId = row.MessageId, ct);
        else
            await (await bus.GetSendEndpoint(new Uri(row.Destination))).Send(message, type, context => context.MessageId = row.MessageId, ct);
    }

    /// <summary>In-memory transport: what the previous process had delivered recently may have died in its queues.</summary>
    private async Task RedeliverAsync(DateTimeOffset startedAt, TimeSpan window, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var since = startedAt - window;
        var count = await scope.ServiceProvider.GetRequiredService<TContext>().Set<OutboxMessage>()
            .Where(m => m.DeliveredAt != null && m.DeliveredAt < startedAt && m.DeliveredAt > since)
            .ExecuteUpdateAsync(s => s.SetProperty(m => m.DeliveredAt, (DateTimeOffset?)null), ct);
        if (count > 0)
            logger.LogInformation("{Context} outbox: {Count} message(s) delivered before the restart go out again (in-memory transport)", typeof(TContext).Name, count);
    }

    private async Task CleanupAsync(TimeSpan retention, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var before = DateTimeOffset.UtcNow - retention;
        await scope.ServiceProvider.GetRequiredService<TContext>().Set<OutboxMessage>().Where(m => m.DeliveredAt != null && m.DeliveredAt < before).ExecuteDeleteAsync(ct);
    }
}

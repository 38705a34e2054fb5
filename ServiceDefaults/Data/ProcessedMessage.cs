using Microsoft.EntityFrameworkCore;

namespace AspireTune.ServiceDefaults.Data;

/// <summary>
/// The inbox of a service's consumers: a message id recorded here, in the same transaction as the effect it
/// caused, is never acted on twice (MassTransit redelivers on failure and RabbitMQ may deliver twice).
/// </summary>
public sealed class ProcessedMessage
{
    public required Guid MessageId { get; init; }
    public required string Consumer { get; init; }
    public DateTimeOffset ProcessedAt { get; init; } = DateTimeOffset.UtcNow;
}

public static class ProcessedMessageExtensions
{
    public static ModelBuilder AddInbox(this ModelBuilder model)
    {
        model.Entity<ProcessedMessage>(e =>
        {
            e.ToTable("processed_messages");
            e.HasKey(m => new { m.MessageId, m.Consumer });
        });
        return model;
    }

    /// <summary>True when this consumer already handled the message.</summary>
    public static Task<bool> AlreadyProcessedAsync(this DbContext db, Guid? messageId, string consumer, CancellationToken ct) =>
        messageId is { } id ? db.Set<ProcessedMessage>().AnyAsync(m => m.MessageId == id && m.Consumer == consumer, ct) : Task.FromResult(false);

    /// <summary>Records the message; save it in the same <c>SaveChanges</c> as the effect.</summary>
    public static void MarkProcessed(this DbContext db, Guid? messageId, string consumer)
    {
        if (messageId is { } id)
            db.Set<ProcessedMessage>().Add(new ProcessedMessage { MessageId = id, Consumer = consumer });
    }

    /// <summary>
    /// Runs <paramref name="handle"/> unless this consumer already handled the message. The inbox row is added first,
    /// so it commits with the handler's own <c>SaveChanges</c> (and its outbox rows); two copies handled at once
    /// collide on the row's key, and the retry of the loser finds the message processed.
    /// </summary>
    public static async Task ConsumeOnceAsync(this DbContext db, MassTransit.ConsumeContext context, string consumer, Func<Task> handle)
    {
        if (await db.AlreadyProcessedAsync(context.MessageId, consumer, context.CancellationToken))
            return;
        db.MarkProcessed(context.MessageId, consumer);
        await handle();
    }
}

using System.Diagnostics;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace AspireTune.ServiceDefaults.Messaging;

/// <summary>
/// A message waiting in a service's own database to be published or sent: written in the same transaction as the
/// state change it announces (<see cref="OutboxExtensions.PublishOnCommit"/>), delivered by
/// <see cref="OutboxDispatcher{TContext}"/> with the broker's confirm, then marked delivered. A crash between the
/// commit and the delivery delays the message; it never loses it.
/// </summary>
public sealed class OutboxMessage
{
    /// <summary>Delivery order within the database.</summary>
    public long Sequence { get; init; }

    /// <summary>The MassTransit message id it goes out with: receivers' inboxes drop a second delivery by it.</summary>
    public required Guid MessageId { get; init; }

    /// <summary>Assembly-qualified name (without version) of the message type.</summary>
    public required string MessageType { get; init; }

    public required string Body { get; init; }

    /// <summary>The queue of a command (<c>queue:name</c>); null publishes the event.</summary>
    public string? Destination { get; init; }

    /// <summary>The trace the message belongs to (W3C traceparent of the activity that wrote it).</summary>
    public string? TraceParent { get; init; }

    public DateTimeOffset CreatedAt { get; init; } = DateTimeOffset.UtcNow;

    public DateTimeOffset? DeliveredAt { get; set; }

    /// <summary>The dispatcher delivering it now (replicas share the table), while <see cref="LockedUntil"/> lies ahead.</summary>
    public string? LockedBy { get; set; }

    public DateTimeOffset? LockedUntil { get; set; }
}

public static class OutboxExtensions
{
    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public static ModelBuilder AddOutbox(this ModelBuilder model)
    {
        model.Entity<OutboxMessage>(e =>
        {
            e.ToTable("outbox_messages");
            e.HasKey(m => m.Sequence);
            e.Property(m => m.Sequence).ValueGeneratedOnAdd();
            e.HasIndex(m => m.MessageId).IsUnique();
            e.HasIndex(m => m.DeliveredAt);
        });
        return model;
    }

    /// <summary>Publishes the event when the next <c>SaveChanges</c> commits (and only then).</summary>
    public static Guid PublishOnCommit<T>(this DbContext db, T message) where T : class => Add(db, message, null);

    /// <summary>Sends the command to <paramref name="queue"/> (<c>queue:name</c>) when the next <c>SaveChanges</c> commits.</summary>
    public static Guid SendOnCommit<T>(this DbContext db, Uri queue, T message) where T : class => Add(db, message, queue.ToString());

    private static Guid Add<T>(DbContext db, T message, string? destination) where T : class
    {
        var type = message.GetType();
        var row = new OutboxMessage
        {
            MessageId = MassTransit.NewId.NextGuid(),
            MessageType = $"{type.FullName}, {type.Assembly.GetName().Name}",
            Body = JsonSerializer.Serialize(message, type, Json),
            Destination = destination,
            TraceParent = Activity.Current?.Id,
        };
        db.Set<OutboxMessage>().Add(row);
        return row.MessageId;
    }
}

/// <summary>
/// Wakes the database's dispatcher as soon as a save wrote outbox rows: after the save, or, when the save ran in a
/// transaction of the caller's, after that transaction commits (before, the dispatcher could not see the rows).
/// </summary>
public sealed class OutboxSignal<TContext> : SaveChangesInterceptor, IDbTransactionInterceptor where TContext : DbContext
{
    private readonly SemaphoreSlim _signal = new(0);
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<DbContext, object> _pending = [];

    public override ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
    {
        Note(eventData.Context);
        return base.SavingChangesAsync(eventData, result, cancellationToken);
    }

    public override InterceptionResult<int> SavingChanges(DbContextEventData eventData, InterceptionResult<int> result)
    {
        Note(eventData.Context);
        return base.SavingChanges(eventData, result);
    }

    public override ValueTask<int> SavedChangesAsync(SaveChangesCompletedEventData eventData, int result, CancellationToken cancellationToken = default)
    {
        FireUnlessInTransaction(eventData.Context);
        return base.SavedChangesAsync(eventData, result, cancellationToken);
    }

    public override int SavedChanges(SaveChangesCompletedEventData eventData, int result)
    {
        FireUnlessInTransaction(eventData.Context);
        return base.SavedChanges(eventData, result);
    }

    public Task TransactionCommittedAsync(System.Data.Common.DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        Fire(eventData.Context);
        return Task.CompletedTask;
    }

    public void TransactionCommitted(System.Data.Common.DbTransaction transaction, TransactionEndEventData eventData) => Fire(eventData.Context);

    private void Note(DbContext? context)
    {
        if (context is not null && context.ChangeTracker.Entries<OutboxMessage>().Any(e => e.State == EntityState.Added))
            _pending.AddOrUpdate(context, this);
    }

    private void FireUnlessInTransaction(DbContext? context)
    {
        if (context?.Database.CurrentTransaction is null)
            Fire(context);
    }

    private void Fire(DbContext? context)
    {
        if (context is not null && _pending.Remove(context))
            Wake();
    }

    public void Wake()
    {
        if (_signal.CurrentCount == 0)
            _signal.Release();
    }

    internal Task<bool> WaitAsync(TimeSpan timeout, CancellationToken ct) => _signal.WaitAsync(timeout, ct);
}

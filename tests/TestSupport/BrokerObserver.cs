using System.Collections.Concurrent;
using MassTransit;

namespace AspireTune.TestSupport;

/// <summary>
/// A durable queue of the test's own bound to one event's exchange on a broker: every copy of the event that the
/// broker routes is counted, also across a broker restart (the queue and its persistent messages survive it).
/// </summary>
public sealed class BrokerObserver<T> : IAsyncDisposable where T : class
{
    private readonly IBusControl _bus;
    private readonly ConcurrentQueue<T> _seen = new();

    private BrokerObserver(IBusControl bus) => _bus = bus;

    public IReadOnlyCollection<T> Seen => _seen;

    public static async Task<BrokerObserver<T>> StartAsync(string broker, CancellationToken ct)
    {
        BrokerObserver<T>? observer = null;
        var bus = Bus.Factory.CreateUsingRabbitMq(cfg =>
        {
            cfg.Host(new Uri(broker));
            cfg.ReceiveEndpoint($"observer-{typeof(T).Name}-{Guid.NewGuid():N}", e => e.Handler<T>(c =>
            {
                observer!._seen.Enqueue(c.Message);
                return Task.CompletedTask;
            }));
        });
        observer = new BrokerObserver<T>(bus);
        await bus.StartAsync(ct);
        return observer;
    }

    /// <summary>Waits (up to <paramref name="timeout"/>) until a copy matching <paramref name="match"/> arrived; false when none did.</summary>
    public async Task<bool> WaitAsync(Func<T, bool> match, TimeSpan timeout, CancellationToken ct)
    {
        var until = DateTime.UtcNow + timeout;
        while (!_seen.Any(match))
        {
            if (DateTime.UtcNow > until)
                return false;
            await Task.Delay(100, ct);
        }
        return true;
    }

    public async ValueTask DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            await _bus.StopAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            // The broker is gone already.
        }
    }
}

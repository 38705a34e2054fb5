using System.Collections.Concurrent;
using AspireTune.Contracts.FineTuning;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;

namespace AspireTune.FineTuning.Tests;

/// <summary>
/// The pause and resume events an in-process host publishes, as a subscriber sees them: a temporary queue of the
/// test's own bound to their exchanges on the host's bus.
/// </summary>
internal sealed class BusEvents : IAsyncDisposable
{
    private readonly ConcurrentQueue<object> _seen = new();
    private HostReceiveEndpointHandle? _handle;

    public IReadOnlyList<T> Of<T>() => [.. _seen.OfType<T>()];

    public static async Task<BusEvents> ListenAsync(IServiceProvider services, CancellationToken ct)
    {
        var events = new BusEvents();
        events._handle = services.GetRequiredService<IBus>().ConnectReceiveEndpoint(new TemporaryEndpointDefinition(), KebabCaseEndpointNameFormatter.Instance, e =>
        {
            e.Handler<TrainingPaused>(c => events.Record(c.Message));
            e.Handler<TrainingResumed>(c => events.Record(c.Message));
        });
        await events._handle.Ready.WaitAsync(ct);
        return events;
    }

    private Task Record(object message)
    {
        _seen.Enqueue(message);
        return Task.CompletedTask;
    }

    /// <summary>Waits (up to a minute) until an event of type <typeparamref name="T"/> matching <paramref name="match"/> arrived, and returns it.</summary>
    public async Task<T> WaitAsync<T>(Func<T, bool> match, CancellationToken ct)
    {
        var until = DateTime.UtcNow.AddMinutes(1);
        while (true)
        {
            if (_seen.OfType<T>().FirstOrDefault(match) is { } found)
                return found;
            if (DateTime.UtcNow > until)
                throw new TimeoutException($"No {typeof(T).Name} matching the condition arrived; seen: {string.Join(", ", _seen)}");
            await Task.Delay(50, ct);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_handle is not null)
            await _handle.StopAsync(CancellationToken.None);
    }
}

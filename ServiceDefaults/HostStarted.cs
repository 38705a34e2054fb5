using Microsoft.Extensions.Hosting;

namespace AspireTune.ServiceDefaults;

/// <summary>Background loops that publish wait for the host (and the bus, started before it) to be up.</summary>
public static class HostStarted
{
    /// <summary>Completes once the host has started: true, or false when it stops first.</summary>
    public static async Task<bool> WaitAsync(IHostApplicationLifetime lifetime, CancellationToken stoppingToken)
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using (lifetime.ApplicationStarted.Register(() => started.TrySetResult()))
        await using (stoppingToken.Register(() => started.TrySetCanceled(stoppingToken)))
        {
            try
            {
                await started.Task;
                return true;
            }
            catch (OperationCanceledException)
            {
                return false;
            }
        }
    }
}

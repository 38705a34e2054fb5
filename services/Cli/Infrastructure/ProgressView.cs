using Spectre.Console;

namespace AspireTune.Cli.Infrastructure;

/// <summary>Where one followed thing stands: progress out of a total, a short status text, whether it is over.</summary>
public sealed record ProgressState(double Value, double Total, string Status, bool Done);

/// <summary>
/// Live progress bars on stderr for long commands (one bar per followed run or job), polling each until it is
/// over; stdout stays free for the command's tables or JSON.
/// </summary>
public static class ProgressView
{
    public static async Task<IReadOnlyList<T>> FollowAsync<T>(CliIo io, IReadOnlyList<string> names, Func<int, CancellationToken, Task<T>> poll,
        Func<T, ProgressState> state, TimeSpan interval, TimeSpan timeout, CancellationToken ct)
    {
        var latest = new T[names.Count];
        var deadline = DateTimeOffset.UtcNow + timeout;
        await io.Err.Progress().AutoClear(false).HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .StartAsync(async context =>
            {
                var tasks = names.Select(n => context.AddTask(Markup.Escape(n), maxValue: 1)).ToArray();
                var open = Enumerable.Range(0, names.Count).ToHashSet();
                while (open.Count > 0)
                {
                    foreach (var i in open.ToList())
                    {
                        latest[i] = await poll(i, ct);
                        var s = state(latest[i]);
                        tasks[i].MaxValue = Math.Max(1, s.Total);
                        tasks[i].Value = s.Done ? tasks[i].MaxValue : Math.Min(s.Value, tasks[i].MaxValue);
                        tasks[i].Description = Markup.Escape($"{names[i]}  {s.Status}");
                        if (s.Done)
                        {
                            tasks[i].StopTask();
                            open.Remove(i);
                        }
                    }
                    if (open.Count == 0)
                        break;
                    if (DateTimeOffset.UtcNow > deadline)
                        throw new CliException($"Gave up waiting after {timeout}; what was started goes on (follow it again, or cancel it).");
                    await Task.Delay(interval, ct);
                }
            });
        return latest;
    }
}

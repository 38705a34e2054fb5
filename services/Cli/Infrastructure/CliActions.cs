using System.CommandLine;
using Spectre.Console;

namespace AspireTune.Cli.Infrastructure;

/// <summary>Actions that report a <see cref="CliException"/> by its message and exit code, never by a stack trace.</summary>
public static class CliActions
{
    public static void SetCliAction(this Command command, CliIo io, Func<ParseResult, CancellationToken, Task<int>> action) =>
        command.SetAction(async (parse, ct) =>
        {
            try
            {
                return await action(parse, ct);
            }
            catch (CliException e)
            {
                io.Err.MarkupLineInterpolated($"[red]{e.Message}[/]");
                return e.ExitCode;
            }
        });

    /// <summary>An action that talks to the services: opens the connection (embedded host or <c>--url</c>) around it.</summary>
    public static void SetServiceAction(this Command command, CliIo io, ConnectionOptions options, Func<ServiceConnection, ParseResult, CancellationToken, Task<int>> action)
    {
        options.AddTo(command);
        command.SetCliAction(io, async (parse, ct) =>
        {
            await using var connection = await ServiceConnection.OpenAsync(options, parse, ct);
            return await action(connection, parse, ct);
        });
    }
}

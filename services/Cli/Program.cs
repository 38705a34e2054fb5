using System.CommandLine;
using AspireTune.Cli.Commands;
using AspireTune.Cli.Infrastructure;
using Spectre.Console;

namespace AspireTune.Cli;

public static class Program
{
    public static Task<int> Main(string[] args) => InvokeAsync(args, CliIo.FromConsole());

    /// <summary>Parses and runs one command line; bad usage exits 2, as the README documents.</summary>
    public static async Task<int> InvokeAsync(string[] args, CliIo io, CancellationToken ct = default)
    {
        var root = Build(io);
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors)
                io.Err.MarkupLineInterpolated($"[red]{error.Message}[/]");
            io.Err.WriteLine("Run 'aspiretune --help' (or add --help to the command) for usage.");
            return ExitCodes.Usage;
        }
        return await parse.InvokeAsync(new InvocationConfiguration { Output = io.StdOut, Error = io.StdErr }, ct);
    }

    public static RootCommand Build(CliIo io)
    {
        var connection = new ConnectionOptions();
        return new RootCommand("AspireTune: decide with evidence between prompting, retrieval and fine-tuning.")
        {
            ServeCommand.Create(),
            ExperimentCommand.Create(io, connection),
            EvaluationCommand.Create(io, connection),
            FineTuningCommand.Create(io, connection),
            ModelsCommand.Create(io, connection),
            RetrievalCommand.Create(io, connection),
            EvalCommand.Create(io, connection),
        };
    }
}

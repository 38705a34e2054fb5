using System.CommandLine;
using AspireTune.Cli.Commands;

namespace AspireTune.Cli;

public static class Program
{
    public static Task<int> Main(string[] args)
    {
        var root = new RootCommand("AspireTune: decide with evidence between prompting, retrieval and fine-tuning.")
        {
            ServeCommand.Create(),
            ExperimentCommand.Create(),
        };
        return root.Parse(args).InvokeAsync();
    }
}

using System.Text.Json;
using System.Text.Json.Serialization;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace AspireTune.Cli.Infrastructure;

/// <summary>
/// Exit codes of every command (documented in the README): 0 ok, 1 error, 2 usage (bad arguments or a request
/// the service refused as invalid), 100 gate failures (as promptfoo).
/// </summary>
public static class ExitCodes
{
    public const int Ok = 0;
    public const int Error = 1;
    public const int Usage = 2;
    public const int GateFailed = 100;
}

/// <summary>A failure the user should read, with the exit code it ends the command with.</summary>
public sealed class CliException(string message, int exitCode = ExitCodes.Error) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

/// <summary>
/// Where a command writes: people read <see cref="Out"/> (tables, sized to the terminal), scripts read the JSON
/// written with <see cref="WriteJson{T}"/> (with <c>--json</c> nothing else goes to stdout); progress and
/// diagnostics go to <see cref="Err"/>.
/// </summary>
public sealed class CliIo
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter() },
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>The same, one value a line (JSONL).</summary>
    public static readonly JsonSerializerOptions JsonLines = new(Json) { WriteIndented = false };

    private readonly TextWriter _stdout;

    public CliIo(TextWriter stdout, TextWriter stderr, bool interactive)
    {
        _stdout = stdout;
        StdErr = stderr;
        Out = Create(stdout, interactive);
        Err = Create(stderr, interactive);
    }

    /// <summary>The process's own console (colours and live progress when it is a terminal).</summary>
    public static CliIo FromConsole() => new(Console.Out, Console.Error, !Console.IsOutputRedirected);

    public IAnsiConsole Out { get; }
    public TextWriter StdOut => _stdout;
    public TextWriter StdErr { get; }
    public IAnsiConsole Err { get; }

    public void WriteJson<T>(T value) => _stdout.WriteLine(JsonSerializer.Serialize(value, Json));

    /// <summary>One line of JSON per value (JSONL), for results that stream.</summary>
    public void WriteJsonLine<T>(T value) => _stdout.WriteLine(JsonSerializer.Serialize(value, JsonLines));

    public void Write(IRenderable renderable) => Out.Write(renderable);

    /// <summary>A table that wraps its columns to the terminal's width.</summary>
    public static Table Table(params string[] columns)
    {
        var table = new Table().Border(TableBorder.Rounded);
        foreach (var column in columns)
            table.AddColumn(new TableColumn(Markup.Escape(column)));
        return table;
    }

    private static IAnsiConsole Create(TextWriter writer, bool interactive)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            Ansi = interactive ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = interactive ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = interactive ? InteractionSupport.Detect : InteractionSupport.No,
        });
        // Redirected output has no terminal width; COLUMNS (set by shells and CI runners) says how wide to draw.
        if (!interactive)
            console.Profile.Width = int.TryParse(Environment.GetEnvironmentVariable("COLUMNS"), out var columns) && columns > 20 ? columns : 160;
        return console;
    }
}

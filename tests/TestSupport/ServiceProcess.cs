using System.Diagnostics;
using System.Text;

namespace AspireTune.TestSupport;

/// <summary>
/// A service's own executable (<c>AspireTune.&lt;Service&gt;.dll</c>, copied next to the tests by the project
/// reference) as a child process on a port of its own, its console captured; killed with SIGKILL when a test says so.
/// </summary>
public sealed class ServiceProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private ServiceProcess(string name, Process process, Uri baseAddress)
    {
        Name = name;
        _process = process;
        BaseAddress = baseAddress;
    }

    public string Name { get; }

    public Uri BaseAddress { get; }

    public bool HasExited => _process.HasExited;

    public string Output
    {
        get
        {
            lock (_output)
                return _output.ToString();
        }
    }

    /// <summary>
    /// Starts <c>AspireTune.<paramref name="project"/>.dll</c> in Production on <paramref name="port"/> (a free one when
    /// not given) with <paramref name="environment"/> on top of the test process's own (a null value removes a variable;
    /// <c>:</c> in keys becomes <c>__</c>).
    /// </summary>
    public static ServiceProcess Start(string project, IReadOnlyDictionary<string, string?> environment, int? port = null)
    {
        var url = $"http://127.0.0.1:{port ?? TestInfrastructure.FreePort()}";
        var bin = AppContext.BaseDirectory;
        var info = new ProcessStartInfo("dotnet", [Path.Combine(bin, $"AspireTune.{project}.dll")])
        {
            WorkingDirectory = bin,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.Environment["urls"] = url;
        info.Environment["DOTNET_ENVIRONMENT"] = "Production";
        info.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        // Dynamic PGO instruments hot methods first: a short-lived test process pays for it (about 15% of its start-up CPU) and never profits.
        info.Environment["DOTNET_TieredPGO"] = "0";
        // A broker or database the test process was pointed at must not leak into a service that was given none.
        info.Environment["ConnectionStrings__messaging"] = null;
        foreach (var (key, value) in environment)
            info.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        var process = new Process { StartInfo = info };
        var service = new ServiceProcess(project, process, new Uri(url));
        process.OutputDataReceived += (_, e) => service.Append(e.Data);
        process.ErrorDataReceived += (_, e) => service.Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return service;
    }

    private void Append(string? line)
    {
        if (line is null)
            return;
        lock (_output)
            _output.AppendLine(line);
    }

    /// <summary>Waits until <c>/health</c> answers 200 (database and broker reachable); fails at once when the process exits.</summary>
    public async Task WaitUntilHealthyAsync(CancellationToken ct, TimeSpan? timeout = null)
    {
        using var http = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(10) };
        var until = DateTime.UtcNow + (timeout ?? TimeSpan.FromMinutes(3));
        while (true)
        {
            if (_process.HasExited)
                throw new InvalidOperationException($"{Name} exited with {_process.ExitCode}:\n{Output}");
            try
            {
                if ((await http.GetAsync("/health", ct)).IsSuccessStatusCode)
                    return;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
            {
                // Not listening yet, or too busy starting to answer.
            }
            if (DateTime.UtcNow > until)
                throw new TimeoutException($"{Name} did not become healthy:\n{Output}");
            await Task.Delay(200, ct);
        }
    }

    /// <summary>SIGKILL: no shutdown hooks, no lease hand-back, no outbox flush, exactly like a crashed machine.</summary>
    public void Kill()
    {
        if (!_process.HasExited)
            _process.Kill(entireProcessTree: true);
        _process.WaitForExit();
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }
}

using System.Diagnostics;
using System.Text;
using AspireTune.TestSupport;

namespace AspireTune.FineTuning.Tests;

/// <summary>The FineTuning service's own executable as a child process (PostgreSQL, in-memory bus unless the environment names a broker), killed with SIGKILL when a test says so.</summary>
internal sealed class ServiceProcess : IAsyncDisposable
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private ServiceProcess(Process process, Uri baseAddress)
    {
        _process = process;
        BaseAddress = baseAddress;
    }

    public Uri BaseAddress { get; }

    public string Output
    {
        get
        {
            lock (_output)
                return _output.ToString();
        }
    }

    public static ServiceProcess Start(string data, string database, IReadOnlyDictionary<string, string?>? environment = null)
    {
        var port = TestInfrastructure.FreePort();
        var bin = AppContext.BaseDirectory;
        var info = new ProcessStartInfo("dotnet", [Path.Combine(bin, "AspireTune.FineTuning.dll")])
        {
            WorkingDirectory = bin,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (key, value) in FineTuningFactory.Defaults(data))
            info.Environment[key.Replace(":", "__")] = value;
        info.Environment["ConnectionStrings__finetuningdb"] = database;
        info.Environment["ConnectionStrings__messaging"] = null;
        info.Environment["urls"] = $"http://127.0.0.1:{port}";
        info.Environment["DOTNET_ENVIRONMENT"] = "Production";
        info.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        foreach (var (key, value) in environment ?? new Dictionary<string, string?>())
            info.Environment[key] = value;
        var process = new Process { StartInfo = info };
        var worker = new ServiceProcess(process, new Uri($"http://127.0.0.1:{port}"));
        process.OutputDataReceived += (_, e) => worker.Append(e.Data);
        process.ErrorDataReceived += (_, e) => worker.Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return worker;
    }

    private void Append(string? line)
    {
        if (line is null)
            return;
        lock (_output)
            _output.AppendLine(line);
    }

    public async Task WaitUntilHealthyAsync()
    {
        using var http = new HttpClient { BaseAddress = BaseAddress };
        var until = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            if (_process.HasExited)
                throw new InvalidOperationException($"The worker exited with {_process.ExitCode}:\n{Output}");
            try
            {
                if ((await http.GetAsync("/health", Ct)).IsSuccessStatusCode)
                    return;
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            if (DateTime.UtcNow > until)
                throw new TimeoutException($"The worker did not become healthy:\n{Output}");
            await Task.Delay(200, Ct);
        }
    }

    /// <summary>SIGKILL: no shutdown hooks, no lease hand-back, exactly like a crashed machine.</summary>
    public void Kill()
    {
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

using System.Diagnostics;
using System.Text;
using Npgsql;
using RabbitMQ.Client;

namespace AspireTune.TestSupport;

/// <summary>
/// A broker or database server of a test's own, run by the AppHost's local-mode scripts (<c>AppHost/Local/*.sh</c>:
/// Debian's binaries on their own ports, node name or cluster, data folder under the temp directory, dropping root to
/// the <c>rabbitmq</c>/<c>postgres</c> user), so a test can stop and start it without touching the shared servers.
/// Stop is the script's own shutdown on SIGTERM (the node's stop, PostgreSQL's fast shutdown); the data folder stays,
/// so a start after a stop is a restart of the same server.
/// </summary>
public abstract class LocalServer : IAsyncDisposable
{
    private readonly string _script;
    private readonly Dictionary<string, string> _environment;
    private readonly StringBuilder _output = new();
    private Process? _process;

    protected LocalServer(string script, string prefix, Dictionary<string, string> environment)
    {
        _script = Path.Combine(TestInfrastructure.RepositoryRoot(), "AppHost", "Local", script);
        DataFolder = TestInfrastructure.TempDataFolder(prefix);
        _environment = environment;
        _environment["LOCAL_DATA"] = Path.Combine(DataFolder, "server");
    }

    public string DataFolder { get; }

    public bool IsRunning => _process is { HasExited: false };

    /// <summary>What the script and the server printed, every start included.</summary>
    public string Output
    {
        get
        {
            lock (_output)
                return _output.ToString();
        }
    }

    /// <summary>Starts the server and waits until it takes connections with the test's credentials.</summary>
    public async Task StartAsync(CancellationToken ct)
    {
        if (IsRunning)
            throw new InvalidOperationException("The server is running already.");
        var info = new ProcessStartInfo("bash", [_script]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var (key, value) in _environment)
            info.Environment[key] = value;
        _process = new Process { StartInfo = info };
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var until = DateTime.UtcNow.AddMinutes(2);
        while (!await IsReadyAsync(ct))
        {
            if (_process.HasExited)
                throw new InvalidOperationException($"{_script} exited with {_process.ExitCode}:\n{Output}");
            if (DateTime.UtcNow > until)
                throw new TimeoutException($"{_script} did not take connections within two minutes:\n{Output}");
            await Task.Delay(250, ct);
        }
    }

    /// <summary>Stops the server the way its script does on SIGTERM and waits until it is gone.</summary>
    public async Task StopAsync(CancellationToken ct)
    {
        if (_process is not { HasExited: false } process)
            return;
        using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            await kill.WaitForExitAsync(ct);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromMinutes(1));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
        }
    }

    protected abstract Task<bool> IsReadyAsync(CancellationToken ct);

    private void Append(string? line)
    {
        if (line is null)
            return;
        lock (_output)
            _output.AppendLine(line);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None);
        _process?.Dispose();
        try
        {
            Directory.Delete(DataFolder, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A file still held by a stopping server; the temp folder is cleaned by the OS later.
        }
        GC.SuppressFinalize(this);
    }

    protected static string Secret() => Guid.NewGuid().ToString("N");
}

/// <summary>A RabbitMQ node of the test's own (own node name, AMQP, management, epmd and distribution ports, mnesia folder).</summary>
public sealed class LocalRabbitMq : LocalServer
{
    private LocalRabbitMq(int amqp, string password) : base("rabbitmq.sh", "rabbitmq-node", new Dictionary<string, string>
    {
        ["AMQP_PORT"] = amqp.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["MANAGEMENT_PORT"] = TestInfrastructure.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["DIST_PORT"] = TestInfrastructure.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["EPMD_PORT"] = TestInfrastructure.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["RABBITMQ_USER"] = "aspiretune",
        ["RABBITMQ_PASSWORD"] = password,
    }) => Uri = $"amqp://aspiretune:{password}@127.0.0.1:{amqp}/";

    /// <summary>The node's AMQP URI (default virtual host).</summary>
    public string Uri { get; }

    /// <summary>Null when Debian's RabbitMQ is not installed here.</summary>
    public static LocalRabbitMq? TryCreate() =>
        File.Exists("/usr/lib/rabbitmq/bin/rabbitmq-server") ? new LocalRabbitMq(TestInfrastructure.FreePort(), Secret()) : null;

    protected override async Task<bool> IsReadyAsync(CancellationToken ct)
    {
        try
        {
            await using var connection = await new ConnectionFactory { Uri = new Uri(Uri) }.CreateConnectionAsync(ct);
            return connection.IsOpen;
        }
        catch (Exception e) when (e is RabbitMQ.Client.Exceptions.BrokerUnreachableException or IOException or System.Net.Sockets.SocketException)
        {
            return false;
        }
    }
}

/// <summary>A PostgreSQL cluster of the test's own (initdb on first start, own port and socket folder).</summary>
public sealed class LocalPostgres : LocalServer
{
    private LocalPostgres(int port, string password) : base("postgres.sh", "postgres-cluster", new Dictionary<string, string>
    {
        ["POSTGRES_PORT"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["POSTGRES_PASSWORD"] = password,
    }) => Server = $"Host=127.0.0.1;Port={port};Username=postgres;Password={password}";

    /// <summary>The server's connection string (no database).</summary>
    public string Server { get; }

    /// <summary>Null when Debian's PostgreSQL server is not installed here.</summary>
    public static LocalPostgres? TryCreate() =>
        Directory.Exists("/usr/lib/postgresql") && Directory.EnumerateFiles("/usr/lib/postgresql", "postgres", SearchOption.AllDirectories).Any()
            ? new LocalPostgres(TestInfrastructure.FreePort(), Secret())
            : null;

    protected override async Task<bool> IsReadyAsync(CancellationToken ct)
    {
        try
        {
            await using var connection = new NpgsqlConnection(Server + ";Database=postgres;Pooling=false;Timeout=5");
            await connection.OpenAsync(ct);
            return true;
        }
        catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException)
        {
            return false;
        }
    }
}

using System.Text;
using Npgsql;

namespace AspireTune.TestSupport;

/// <summary>
/// The four services as separate processes, wired as <c>infra/run-distributed.sh</c> and the AppHost wire them: one
/// broker URI, a database of its own per service on one PostgreSQL server, a data folder per service, one shared
/// artifacts folder, service discovery keys, and a port per service that stays the same when a service is killed and
/// started again (its data folder too, so it comes back with the same worker identity).
/// </summary>
public sealed class ServiceDeployment : IAsyncDisposable
{
    /// <summary>The services in start order (Comparison, the entry point, last).</summary>
    public static readonly IReadOnlyList<string> Services = ["retrieval", "finetuning", "evaluation", "comparison"];

    private static readonly Dictionary<string, string> Projects = new()
    {
        ["retrieval"] = "Retrieval", ["finetuning"] = "FineTuning", ["evaluation"] = "Evaluation", ["comparison"] = "Comparison",
    };

    private readonly Dictionary<string, int> _ports = Services.ToDictionary(s => s, _ => TestInfrastructure.FreePort());
    private readonly Dictionary<string, ServiceProcess> _running = [];
    private readonly Dictionary<string, StringBuilder> _earlier = Services.ToDictionary(s => s, _ => new StringBuilder());
    private readonly Dictionary<string, string> _databases;
    private readonly IReadOnlyDictionary<string, string?> _settings;
    private readonly string _postgresServer;
    private readonly List<string> _timeline = [];

    /// <param name="messaging">The broker's AMQP URI (a virtual host of the test's own).</param>
    /// <param name="postgresServer">The PostgreSQL server's connection string; each service gets a fresh database on it.</param>
    /// <param name="settings">Configuration every service gets (keys with <c>:</c> or <c>__</c>).</param>
    public ServiceDeployment(string messaging, string postgresServer, IReadOnlyDictionary<string, string?> settings)
    {
        Messaging = messaging;
        _postgresServer = postgresServer;
        _settings = settings;
        var run = Guid.NewGuid().ToString("N")[..12];
        _databases = Services.ToDictionary(s => s, s => $"faults_{run}_{s}db");
        Root = TestInfrastructure.TempDataFolder("deployment");
    }

    public string Messaging { get; }

    /// <summary>The data root: <c>&lt;root&gt;/&lt;service&gt;</c> per service, <c>&lt;root&gt;/artifacts</c> shared.</summary>
    public string Root { get; }

    public Uri Address(string service) => new($"http://127.0.0.1:{_ports[service]}");

    /// <summary>The service's database connection string.</summary>
    public string Database(string service) => $"{_postgresServer};Database={_databases[service]}";

    public HttpClient Client(string service) => new() { BaseAddress = Address(service), Timeout = TimeSpan.FromMinutes(2) };

    public bool IsRunning(string service) => _running.TryGetValue(service, out var p) && !p.HasExited;

    /// <summary>Starts every service and waits until all are healthy.</summary>
    public async Task StartAsync(CancellationToken ct)
    {
        foreach (var service in Services)
            Launch(service);
        foreach (var service in Services)
            await _running[service].WaitUntilHealthyAsync(ct);
        Note("all services healthy");
    }

    /// <summary>Starts a service again (after <see cref="Kill"/>) on its port, data folder and database; waits until healthy.</summary>
    public async Task StartAsync(string service, CancellationToken ct)
    {
        Launch(service);
        await _running[service].WaitUntilHealthyAsync(ct);
        Note($"{service} healthy");
    }

    /// <summary>SIGKILL to one service's process.</summary>
    public void Kill(string service)
    {
        var process = _running[service];
        process.Kill();
        _earlier[service].Append(process.Output).AppendLine($"---- {service} killed with SIGKILL at {DateTime.UtcNow:O} ----");
        _running.Remove(service);
        Note($"{service} killed with SIGKILL");
    }

    /// <summary>Writes a line on the deployment's timeline (shown first in <see cref="Tail"/>).</summary>
    public void Note(string what)
    {
        lock (_timeline)
            _timeline.Add($"{DateTime.UtcNow:HH:mm:ss.fff} {what}");
    }

    /// <summary>The console of a service, every process it ran as.</summary>
    public string Output(string service) => _earlier[service] + (_running.TryGetValue(service, out var p) ? p.Output : "");

    /// <summary>The last lines of every service's console, for a failure message.</summary>
    public string Tail(int lines = 40)
    {
        lock (_timeline)
            return "\n===== timeline =====\n" + string.Join('\n', _timeline) + string.Concat(Services.Select(s =>
                $"\n===== {s} =====\n" + string.Join('\n', Output(s).Split('\n').TakeLast(lines))));
    }

    private void Launch(string service)
    {
        if (IsRunning(service))
            throw new InvalidOperationException($"{service} is running already.");
        var environment = new Dictionary<string, string?>(_settings)
        {
            ["ASPIRETUNE_DATA"] = Path.Combine(Root, service),
            ["Artifacts:Path"] = Path.Combine(Root, "artifacts"),
            ["ConnectionStrings:messaging"] = Messaging,
            [$"ConnectionStrings:{service}db"] = Database(service),
        };
        foreach (var other in Services)
            environment[$"services:{other}:http:0"] = Address(other).ToString().TrimEnd('/');
        _running[service] = ServiceProcess.Start(Projects[service], environment, _ports[service]);
        Note($"{service} started");
    }

    private async Task DropAsync(string database)
    {
        try
        {
            await using var connection = new NpgsqlConnection($"{_postgresServer};Database=postgres;Pooling=false;Timeout=5");
            await connection.OpenAsync();
            await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)", connection);
            await drop.ExecuteNonQueryAsync();
        }
        catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException)
        {
            // The server is gone already (a test's own): nothing left to drop.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Task.WhenAll(_running.Values.Select(p => p.DisposeAsync().AsTask()));
        _running.Clear();
        // The databases on a shared server go with the deployment; a server of the test's own goes whole.
        await Task.WhenAll(_databases.Values.Select(DropAsync));
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A file still held by an exiting process; the temp folder is cleaned by the OS later.
        }
    }
}

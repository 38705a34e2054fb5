using System.Net;
using System.Net.Sockets;

namespace AspireTune.TestSupport;

/// <summary>
/// Where integration tests find the real broker and database: the ones <c>infra/bootstrap.sh</c> starts on
/// 127.0.0.1, or whatever <c>ConnectionStrings__messaging</c> / <c>ASPIRETUNE_TEST_POSTGRES</c> name.
/// </summary>
public static class TestInfrastructure
{
    public static string RabbitMq =>
        Environment.GetEnvironmentVariable("ConnectionStrings__messaging") is { Length: > 0 } cs ? cs : "amqp://guest:guest@127.0.0.1:5672/";

    public static string PostgresServer =>
        Environment.GetEnvironmentVariable("ASPIRETUNE_TEST_POSTGRES") is { Length: > 0 } cs ? cs : "Host=127.0.0.1;Port=5432;Username=postgres;Password=postgres";

    /// <summary>A connection string to a database of its own for one test (created on first use by EF).</summary>
    public static string PostgresDatabase(string prefix) => $"{PostgresServer};Database={prefix}_{Guid.NewGuid():N}";

    /// <summary>A fresh folder under the temp directory, for a host's data.</summary>
    public static string TempDataFolder(string prefix = "aspiretune")
    {
        var path = Path.Combine(Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(path);
        return path;
    }

    /// <summary>The checkout the tests run from (the folder holding <c>AspireTune.sln</c>).</summary>
    public static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "AspireTune.sln")))
            dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Run the tests from inside the repository.");
    }

    /// <summary>A TCP port free on loopback right now.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Makes <paramref name="link"/> a second name (hard link) of <paramref name="target"/>, with ln (.NET has no API for it).</summary>
    public static void HardLink(string target, string link)
    {
        using var ln = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("ln", [target, link]) { RedirectStandardError = true })!;
        var error = ln.StandardError.ReadToEnd();
        ln.WaitForExit();
        if (ln.ExitCode != 0)
            throw new InvalidOperationException($"ln {target} {link} failed: {error}");
    }
}

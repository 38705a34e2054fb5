using System.Diagnostics;

namespace AspireTune.TestSupport;

/// <summary>
/// <c>rabbitmqctl</c> against the local broker, for tests that need a virtual host of their own or a broker that
/// refuses to take messages. Null from <see cref="TryCreateVirtualHostAsync"/> when the tool cannot reach a node
/// here (the broker is remote or not ours): such tests skip and say why.
/// </summary>
public static class RabbitMqAdmin
{
    /// <summary>A new virtual host with full rights for guest; its AMQP URI, or null when rabbitmqctl is not usable.</summary>
    public static async Task<string?> TryCreateVirtualHostAsync(string prefix)
    {
        var name = $"{prefix}-{Guid.NewGuid():N}";
        if (await CtlAsync("add_vhost", name) != 0)
            return null;
        await AllowWritesAsync(name, true);
        return $"amqp://guest:guest@127.0.0.1:5672/{Uri.EscapeDataString(name)}";
    }

    public static string VirtualHostOf(string uri) => Uri.UnescapeDataString(new Uri(uri).AbsolutePath.TrimStart('/'));

    /// <summary>Grants or takes away guest's right to publish in the virtual host (configure and read stay).</summary>
    public static async Task AllowWritesAsync(string vhost, bool allowed)
    {
        if (await CtlAsync("set_permissions", "-p", vhost, "guest", ".*", allowed ? ".*" : "^$", ".*") != 0)
            throw new InvalidOperationException($"rabbitmqctl could not set the permissions of '{vhost}'.");
    }

    public static Task DeleteVirtualHostAsync(string vhost) => CtlAsync("delete_vhost", vhost);

    private static async Task<int> CtlAsync(params string[] args)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo("rabbitmqctl", args) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false })!;
            await process.StandardOutput.ReadToEndAsync();
            await process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            return process.ExitCode;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return -1; // not installed
        }
    }
}

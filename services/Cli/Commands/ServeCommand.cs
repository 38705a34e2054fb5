using System.CommandLine;

namespace AspireTune.Cli.Commands;

/// <summary><c>aspiretune serve</c>: the embedded host, all four services in one process.</summary>
public static class ServeCommand
{
    public static Command Create()
    {
        var urls = new Option<string?>("--urls") { Description = "Addresses to listen on (default http://127.0.0.1:5080, or ASPNETCORE_URLS)." };
        var data = new Option<string?>("--data") { Description = "Data folder (default ASPIRETUNE_DATA, else ./data)." };
        var command = new Command("serve", "Run all four services in one process (in-memory bus, SQLite, embedded index).") { urls, data };
        command.SetAction(async (parse, ct) =>
        {
            var app = EmbeddedHost.Build(HostArgs(parse.GetValue(urls), parse.GetValue(data)));
            await app.StartAsync(ct);
            var addresses = app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>()
                .Features.Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()!.Addresses;
            EmbeddedHost.PointServicesAt(app, addresses.First());
            await app.WaitForShutdownAsync(ct);
            return 0;
        });
        return command;
    }

    /// <summary>Host arguments from CLI options, keeping ASPNETCORE_URLS when no --urls is given.</summary>
    internal static string[] HostArgs(string? urls, string? data)
    {
        var args = new List<string>();
        var effectiveUrls = urls ?? (Environment.GetEnvironmentVariable("ASPNETCORE_URLS") is { Length: > 0 } ? null : "http://127.0.0.1:5080");
        if (effectiveUrls is not null)
            args.Add($"--urls={effectiveUrls}");
        if (data is not null)
            args.Add($"--ASPIRETUNE_DATA={Path.GetFullPath(data)}");
        return [.. args];
    }
}

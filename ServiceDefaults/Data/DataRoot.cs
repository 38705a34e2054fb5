using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace AspireTune.ServiceDefaults.Data;

/// <summary>
/// The one folder a host reads and writes: <c>ASPIRETUNE_DATA</c> (or <c>AspireTune:DataPath</c>), default
/// <c>./data</c>. Every user-supplied path is resolved through <see cref="Resolve"/> and confined to it.
/// </summary>
public sealed class DataRoot
{
    public DataRoot(string path)
    {
        Path = System.IO.Path.GetFullPath(path);
        Directory.CreateDirectory(Path);
    }

    /// <summary>Absolute path of the data folder.</summary>
    public string Path { get; }

    /// <summary>
    /// Resolves a path given absolute or relative to the data folder; throws <see cref="PathOutsideDataRootException"/>
    /// when it escapes the folder (<c>..</c>, absolute elsewhere, or a symbolic link pointing out).
    /// </summary>
    public string Resolve(string path)
    {
        if (string.IsNullOrWhiteSpace(path))
            throw new PathOutsideDataRootException(path ?? "", "the path is empty");
        var full = System.IO.Path.GetFullPath(System.IO.Path.IsPathRooted(path) ? path : System.IO.Path.Combine(Path, path));
        if (!IsInside(full))
            throw new PathOutsideDataRootException(path, "it is outside the data folder");
        // A link inside the folder may point outside it: check the resolved target of every existing segment.
        var probe = full;
        while (probe.Length > Path.Length)
        {
            var info = new FileInfo(probe);
            var target = info.Exists ? info.ResolveLinkTarget(returnFinalTarget: true) : new DirectoryInfo(probe).Exists ? new DirectoryInfo(probe).ResolveLinkTarget(returnFinalTarget: true) : null;
            if (target is not null && !IsInside(System.IO.Path.GetFullPath(target.FullName)))
                throw new PathOutsideDataRootException(path, "it links outside the data folder");
            probe = System.IO.Path.GetDirectoryName(probe) ?? Path;
        }
        return full;
    }

    /// <summary>A sub-folder of the data folder, created when missing.</summary>
    public string Folder(string name) => Directory.CreateDirectory(System.IO.Path.Combine(Path, name)).FullName;

    private bool IsInside(string full) =>
        full == Path || full.StartsWith(Path.EndsWith(System.IO.Path.DirectorySeparatorChar) ? Path : Path + System.IO.Path.DirectorySeparatorChar, StringComparison.Ordinal);
}

/// <summary>A user-supplied path that is not inside the data folder.</summary>
public sealed class PathOutsideDataRootException(string path, string reason)
    : Exception($"The path '{path}' is not allowed: {reason}. Paths must be inside the data folder (ASPIRETUNE_DATA).")
{
    public string RequestedPath { get; } = path;
}

public static class DataRootExtensions
{
    public const string EnvironmentVariable = "ASPIRETUNE_DATA";

    public static IHostApplicationBuilder AddDataRoot(this IHostApplicationBuilder builder)
    {
        var path = builder.Configuration[EnvironmentVariable] ?? builder.Configuration["AspireTune:DataPath"] ?? "data";
        builder.Services.AddSingleton(new DataRoot(path));
        return builder;
    }
}

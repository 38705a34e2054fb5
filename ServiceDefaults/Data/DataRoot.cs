using System.Runtime.InteropServices;
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
        if (path.Contains('\0', StringComparison.Ordinal))
            throw new PathOutsideDataRootException(path.Replace("\0", "\\0", StringComparison.Ordinal), "it contains a NUL character");
        if (path.Length > MaxPathChars)
            throw new PathOutsideDataRootException(path[..64] + "...", $"it is longer than {MaxPathChars} characters");
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

    private const int MaxPathChars = 4096;

    /// <summary>
    /// Every file under a directory of the data folder, after checking that no entry is a link leading out of the
    /// folder (links that stay inside are followed, each real directory once). Throws
    /// <see cref="PathOutsideDataRootException"/> naming the first entry that leads out.
    /// </summary>
    public IReadOnlyList<string> ConfinedFiles(string directory)
    {
        var files = new List<string>();
        var visited = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Stack<string>();
        pending.Push(Resolve(directory));
        while (pending.Count > 0)
        {
            var current = pending.Pop();
            if (!visited.Add(RealPath(current)))
                continue;
            foreach (var entry in new DirectoryInfo(current).EnumerateFileSystemInfos())
            {
                if (entry.LinkTarget is not null)
                {
                    var target = entry.ResolveLinkTarget(returnFinalTarget: true);
                    if (target is null || !target.Exists || !IsInside(System.IO.Path.GetFullPath(target.FullName)))
                        throw new PathOutsideDataRootException(System.IO.Path.GetRelativePath(Path, entry.FullName), "it is a link that leads out of the data folder (or to nothing)");
                }
                if ((entry.Attributes & FileAttributes.Directory) != 0)
                    pending.Push(entry.FullName);
                else
                {
                    RefuseHardLink(entry.FullName, entry.FullName);
                    files.Add(entry.FullName);
                }
            }
        }
        files.Sort(StringComparer.Ordinal);
        return files;
    }

    /// <summary>
    /// Opens a file of the data folder for reading and checks, on the open handle, that what was opened lies inside
    /// the folder, so a link swapped in between a check and the read cannot leak a file from elsewhere.
    /// </summary>
    public FileStream OpenRead(string path)
    {
        var full = Resolve(path);
        var stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        var opened = OpenedPath(stream);
        try
        {
            if (opened is not null && !IsInside(opened))
                throw new PathOutsideDataRootException(System.IO.Path.GetRelativePath(Path, full), "it was replaced by a link that leads out of the data folder");
            if (OperatingSystem.IsLinux())
                RefuseHardLink($"/proc/self/fd/{stream.SafeFileHandle.DangerousGetHandle()}", full);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
        return stream;
    }

    /// <summary>
    /// A hard link is a second name of the same file: nothing in the path shows where its other names are, so one
    /// made inside the folder to a file outside it (<c>ln /etc/shadow data/models/x/vocab.json</c>) passes every
    /// path check. A regular file with more than one name is therefore refused (Linux; elsewhere not detectable here).
    /// </summary>
    private void RefuseHardLink(string probe, string shown)
    {
        if (LinkCount(probe) is > 1 and var names)
            throw new PathOutsideDataRootException(System.IO.Path.GetRelativePath(Path, shown), $"it is a hard link ({names} names for one file), whose other names may lie outside the data folder");
    }

    /// <summary>The number of names (hard links) of a file, following symbolic links; null where it cannot be read.</summary>
    internal static uint? LinkCount(string path)
    {
        if (!OperatingSystem.IsLinux())
            return null;
        // statx's buffer has the same layout on every architecture: stx_nlink is the 32-bit field at offset 16.
        var buffer = new byte[256];
        return Native.Statx(Native.AtFdCwd, path, 0, Native.StatxNlink, buffer) == 0 ? BitConverter.ToUInt32(buffer, 16) : null;
    }

    private static class Native
    {
        public const int AtFdCwd = -100;
        public const uint StatxNlink = 0x4;

        [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
        public static extern int Statx(int dirfd, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, [Out] byte[] buffer);
    }

    // Linux names the file behind a descriptor in /proc/self/fd; elsewhere the checks before opening stand alone.
    private static string? OpenedPath(FileStream stream)
    {
        var descriptor = $"/proc/self/fd/{stream.SafeFileHandle.DangerousGetHandle()}";
        return OperatingSystem.IsLinux() && File.Exists(descriptor) && new FileInfo(descriptor).LinkTarget is { } target ? target : null;
    }

    private static string RealPath(string directory) =>
        new DirectoryInfo(directory).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? System.IO.Path.GetFullPath(directory);

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

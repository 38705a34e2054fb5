using System.Security.Cryptography;
using AspireTune.Contracts.Common;
using AspireTune.ServiceDefaults.Data;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace AspireTune.ServiceDefaults.Artifacts;

/// <summary>
/// Claim-check storage for payloads too large for a message. Content is addressed by SHA-256, so writing the
/// same bytes twice yields the same <see cref="ArtifactRef"/> and a reader can verify what it got.
/// </summary>
public interface IArtifactStore
{
    /// <summary>Stores the stream under <paramref name="category"/> and returns its reference.</summary>
    Task<ArtifactRef> PutAsync(Stream content, string category, string fileName, string contentType, CancellationToken ct = default);

    /// <summary>Opens an artifact; throws <see cref="ArtifactNotFoundException"/> when absent.</summary>
    Stream OpenRead(ArtifactRef artifact);

    /// <summary>Reads an artifact whole and checks its SHA-256; throws <see cref="ArtifactCorruptException"/> on mismatch.</summary>
    Task<byte[]> ReadVerifiedAsync(ArtifactRef artifact, CancellationToken ct = default);

    /// <summary>The local file behind an artifact (the directory store is the only store today).</summary>
    string LocalPath(ArtifactRef artifact);
}

public sealed class ArtifactNotFoundException(string id) : Exception($"Artifact '{id}' does not exist in the artifact store.");

public sealed class ArtifactCorruptException(string id, string expected, string actual)
    : Exception($"Artifact '{id}' has SHA-256 {actual}, but the message that referenced it says {expected}.");

/// <summary>
/// The default store: a directory (<c>Artifacts:Path</c>, default <c>&lt;data&gt;/artifacts</c>). Services of a
/// distributed deployment point it at one shared volume.
/// </summary>
public sealed class DirectoryArtifactStore(string root) : IArtifactStore
{
    public string Root { get; } = Path.GetFullPath(root);

    public async Task<ArtifactRef> PutAsync(Stream content, string category, string fileName, string contentType, CancellationToken ct = default)
    {
        ValidateSegment(category, nameof(category));
        ValidateSegment(fileName, nameof(fileName));
        var staging = Directory.CreateDirectory(Path.Combine(Root, ".staging")).FullName;
        var temp = Path.Combine(staging, Guid.NewGuid().ToString("N"));
        string sha;
        long length;
        await using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
        using (var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
        {
            var buffer = new byte[1 << 16];
            int read;
            while ((read = await content.ReadAsync(buffer, ct)) > 0)
            {
                hash.AppendData(buffer, 0, read);
                await file.WriteAsync(buffer.AsMemory(0, read), ct);
            }
            length = file.Length;
            sha = Convert.ToHexStringLower(hash.GetHashAndReset());
        }
        var id = $"{category}/{sha}/{fileName}";
        var target = Path.Combine(Root, id);
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        if (File.Exists(target))
            File.Delete(temp); // same content already stored
        else
            File.Move(temp, target); // atomic within one volume: readers never see a half-written file
        return new ArtifactRef { Id = id, Sha256 = sha, Length = length, ContentType = contentType };
    }

    public Stream OpenRead(ArtifactRef artifact)
    {
        var path = LocalPath(artifact);
        return File.Exists(path) ? new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true) : throw new ArtifactNotFoundException(artifact.Id);
    }

    public async Task<byte[]> ReadVerifiedAsync(ArtifactRef artifact, CancellationToken ct = default)
    {
        await using var stream = OpenRead(artifact);
        using var memory = new MemoryStream();
        await stream.CopyToAsync(memory, ct);
        var bytes = memory.ToArray();
        var actual = Convert.ToHexStringLower(SHA256.HashData(bytes));
        return string.Equals(actual, artifact.Sha256, StringComparison.OrdinalIgnoreCase) ? bytes : throw new ArtifactCorruptException(artifact.Id, artifact.Sha256, actual);
    }

    public string LocalPath(ArtifactRef artifact)
    {
        var full = Path.GetFullPath(Path.Combine(Root, artifact.Id));
        return full.StartsWith(Root + Path.DirectorySeparatorChar, StringComparison.Ordinal) ? full : throw new ArtifactNotFoundException(artifact.Id);
    }

    private static void ValidateSegment(string value, string name)
    {
        if (string.IsNullOrWhiteSpace(value) || value.Contains("..") || value.IndexOfAny(['\\', ':', '\0']) >= 0 || value.StartsWith('/'))
            throw new ArgumentException($"'{value}' is not a valid artifact {name}.", name);
    }
}

public static class ArtifactStoreExtensions
{
    public static IHostApplicationBuilder AddArtifactStore(this IHostApplicationBuilder builder)
    {
        builder.Services.AddSingleton<IArtifactStore>(sp =>
            new DirectoryArtifactStore(builder.Configuration["Artifacts:Path"] ?? sp.GetRequiredService<DataRoot>().Folder("artifacts")));
        return builder;
    }
}

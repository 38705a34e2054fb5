using System.Security.Cryptography;
using System.Text;
using AspireTune.ServiceDefaults.Artifacts;

namespace AspireTune.Platform.Tests;

public sealed class ArtifactStoreTests
{
    private readonly DirectoryArtifactStore _store = new(TestSupport.TestInfrastructure.TempDataFolder());

    [Fact]
    public async Task Put_ThenRead_ReturnsSameBytesAndHash()
    {
        var bytes = Encoding.UTF8.GetBytes("{\"input\":\"hello\",\"expected\":\"ham\"}\n");

        var artifact = await _store.PutAsync(new MemoryStream(bytes), "datasets", "train.jsonl", "application/jsonl", TestContext.Current.CancellationToken);

        artifact.Sha256.Should().Be(Convert.ToHexStringLower(SHA256.HashData(bytes)));
        artifact.Length.Should().Be(bytes.Length);
        (await _store.ReadVerifiedAsync(artifact, TestContext.Current.CancellationToken)).Should().Equal(bytes);
    }

    [Fact]
    public async Task Read_TamperedContent_ThrowsCorrupt()
    {
        var artifact = await _store.PutAsync(new MemoryStream([1, 2, 3]), "datasets", "x.bin", "application/octet-stream", TestContext.Current.CancellationToken);
        await File.WriteAllBytesAsync(_store.LocalPath(artifact), [9, 9, 9], TestContext.Current.CancellationToken);

        var act = () => _store.ReadVerifiedAsync(artifact, TestContext.Current.CancellationToken);

        await act.Should().ThrowAsync<ArtifactCorruptException>();
    }

    [Fact]
    public async Task Put_InvalidCategory_Throws()
    {
        var act = () => _store.PutAsync(new MemoryStream([1]), "../escape", "x.bin", "application/octet-stream", TestContext.Current.CancellationToken);
        await act.Should().ThrowAsync<ArgumentException>();
    }
}

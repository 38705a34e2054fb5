using AspireTune.ServiceDefaults.Data;

namespace AspireTune.Platform.Tests;

public sealed class PathConfinementTests
{
    private readonly DataRoot _root = new(TestSupport.TestInfrastructure.TempDataFolder());

    [Fact]
    public void Resolve_RelativePathInside_ReturnsFullPath()
    {
        _root.Resolve("models/gpt2").Should().Be(Path.Combine(_root.Path, "models", "gpt2"));
    }

    [Theory]
    [InlineData("../etc/passwd")]
    [InlineData("/etc/passwd")]
    [InlineData("models/../../outside")]
    [InlineData("")]
    public void Resolve_PathOutside_Throws(string path)
    {
        var act = () => _root.Resolve(path);
        act.Should().Throw<PathOutsideDataRootException>();
    }

    [Fact]
    public void Resolve_SymlinkPointingOutside_Throws()
    {
        var outside = TestSupport.TestInfrastructure.TempDataFolder("outside");
        Directory.CreateSymbolicLink(Path.Combine(_root.Path, "escape"), outside);

        var act = () => _root.Resolve("escape/secret.txt");

        act.Should().Throw<PathOutsideDataRootException>().WithMessage("*links outside*");
    }
}

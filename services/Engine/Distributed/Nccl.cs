using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace AspireTune.Engine.Distributed;

/// <summary>
/// The NCCL C API entry points data-parallel training needs. The library is the one PyTorch itself uses:
/// <c>ASPIRETUNE_NCCL_LIBRARY</c> when set, else <c>libnccl.so.2</c> next to libtorch (pip's
/// <c>nvidia/nccl/lib</c> beside <c>torch/lib</c>, or <c>torch/lib</c>), else the system's. Nothing is loaded until a
/// communicator is created, so machines without NCCL never touch it.
/// </summary>
internal static partial class NcclNative
{
    private const string Lib = "aspiretune-nccl";

    static NcclNative() => NativeLibrary.SetDllImportResolver(typeof(NcclNative).Assembly, Resolve);

    /// <summary>ncclUniqueId: 128 opaque bytes that rank 0 creates and every rank receives.</summary>
    [InlineArray(128)]
    internal struct UniqueId
    {
        private byte _element;
    }

    internal enum DataType { Float32 = 7, BFloat16 = 9 }

    internal enum ReduceOp { Sum = 0 }

    [LibraryImport(Lib)] internal static partial int ncclGetVersion(out int version);
    [LibraryImport(Lib)] internal static partial int ncclGetUniqueId(out UniqueId id);
    [LibraryImport(Lib)] internal static partial int ncclCommInitRank(out IntPtr comm, int ranks, UniqueId id, int rank);
    [LibraryImport(Lib)] internal static partial int ncclAllReduce(IntPtr send, IntPtr receive, nuint count, DataType type, ReduceOp op, IntPtr comm, IntPtr stream);
    [LibraryImport(Lib)] internal static partial int ncclBroadcast(IntPtr send, IntPtr receive, nuint count, DataType type, int root, IntPtr comm, IntPtr stream);
    [LibraryImport(Lib)] internal static partial int ncclCommDestroy(IntPtr comm);
    [LibraryImport(Lib)] internal static partial int ncclCommAbort(IntPtr comm);
    [LibraryImport(Lib)] internal static partial IntPtr ncclGetErrorString(int result);

    internal static void Check(int result, string call)
    {
        if (result == 0)
            return;
        var text = Marshal.PtrToStringUTF8(ncclGetErrorString(result));
        throw new InvalidOperationException($"{call} failed: {text ?? "NCCL error"} ({result})");
    }

    /// <summary>Where libnccl is looked for, first hit wins.</summary>
    internal static IEnumerable<string> Candidates()
    {
        if (Environment.GetEnvironmentVariable("ASPIRETUNE_NCCL_LIBRARY") is { Length: > 0 } explicitPath)
            yield return explicitPath;
        foreach (var torchLib in TorchLibraryFolders())
        {
            yield return Path.GetFullPath(Path.Combine(torchLib, "..", "..", "nvidia", "nccl", "lib", "libnccl.so.2"));
            yield return Path.Combine(torchLib, "libnccl.so.2");
        }
        yield return "libnccl.so.2";
    }

    private static IEnumerable<string> TorchLibraryFolders() =>
        (Environment.GetEnvironmentVariable("LD_LIBRARY_PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Where(d => File.Exists(Path.Combine(d, "libtorch_cuda.so")) || File.Exists(Path.Combine(d, "libtorch.so")));

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path)
    {
        if (name != Lib)
            return IntPtr.Zero;
        foreach (var candidate in Candidates())
            if (NativeLibrary.TryLoad(candidate, out var handle))
                return handle;
        throw new DllNotFoundException("NCCL (libnccl.so.2) was not found: set ASPIRETUNE_NCCL_LIBRARY, or put it next to libtorch or on the library path.");
    }
}

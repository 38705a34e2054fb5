using System.Runtime.InteropServices;

namespace AspireTune.Engine.Kernels;

/// <summary>The few CUDA driver API entry points the engine's own kernels need (libcuda.so.1 comes with the driver).</summary>
internal static unsafe partial class CudaDriver
{
    private const string Lib = "libcuda.so.1";

    [LibraryImport(Lib)] internal static partial int cuInit(uint flags);
    [LibraryImport(Lib)] internal static partial int cuDeviceGet(out int device, int ordinal);
    [LibraryImport(Lib)] internal static partial int cuDevicePrimaryCtxRetain(out IntPtr context, int device);
    [LibraryImport(Lib)] internal static partial int cuCtxGetCurrent(out IntPtr context);
    [LibraryImport(Lib)] internal static partial int cuCtxSetCurrent(IntPtr context);
    [LibraryImport(Lib)] internal static partial int cuModuleLoadData(out IntPtr module, byte* image);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] internal static partial int cuModuleGetFunction(out IntPtr function, IntPtr module, string name);
    [LibraryImport(Lib)] internal static partial int cuGetErrorName(int error, out IntPtr name);

    [LibraryImport(Lib)]
    internal static partial int cuLaunchKernel(IntPtr function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint blockZ,
        uint sharedBytes, IntPtr stream, void** parameters, void** extra);

    /// <summary>Throws with the driver's error name unless <paramref name="result"/> is CUDA_SUCCESS.</summary>
    internal static void Check(int result, string call)
    {
        if (result == 0) return;
        var name = cuGetErrorName(result, out var p) == 0 ? Marshal.PtrToStringUTF8(p) : null;
        throw new InvalidOperationException($"{call} failed: {name ?? "CUDA error"} ({result})");
    }
}

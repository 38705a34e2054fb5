using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace AspireTune.Engine.Distributed;

/// <summary>
/// Data parallelism for the trainer: this process is rank <see cref="Rank"/> of <see cref="WorldSize"/>, trains on its
/// shard of every batch, and sums the flat gradient buffers of all ranks after the backward pass. With one rank every
/// call is the identity, so world size 1 runs the same code as a single GPU.
/// </summary>
public interface IDataParallel
{
    int Rank { get; }

    int WorldSize { get; }

    /// <summary>Sums a contiguous fp32 tensor across the ranks, in place.</summary>
    void AllReduceSum(Tensor buffer);

    /// <summary>Copies rank 0's contiguous fp32 tensor to every rank, in place (the starting weights).</summary>
    void Broadcast(Tensor buffer);
}

/// <summary>
/// One rank's NCCL communicator on the CUDA device of that rank. Rank 0 creates the rendezvous id
/// (<see cref="CreateRendezvous"/>) and the launcher passes it, as hex, to every rank's process.
/// </summary>
public sealed partial class NcclCommunicator : IDataParallel, IDisposable
{
    private IntPtr _comm;

    private NcclCommunicator(IntPtr comm, int rank, int worldSize)
    {
        _comm = comm;
        Rank = rank;
        WorldSize = worldSize;
    }

    public int Rank { get; }

    public int WorldSize { get; }

    /// <summary>The NCCL version (e.g. 22803 for 2.28.3), or null when no NCCL library can be loaded here.</summary>
    public static int? Version()
    {
        try
        {
            NcclNative.Check(NcclNative.ncclGetVersion(out var version), "ncclGetVersion");
            return version;
        }
        catch (DllNotFoundException)
        {
            return null;
        }
    }

    /// <summary>A new rendezvous id as 256 hex characters, made once by the launcher (or rank 0).</summary>
    public static string CreateRendezvous()
    {
        NcclNative.Check(NcclNative.ncclGetUniqueId(out var id), "ncclGetUniqueId");
        return Convert.ToHexString(id);
    }

    /// <summary>Joins the group: blocks until all <paramref name="worldSize"/> ranks have called it with the same id.</summary>
    public static NcclCommunicator Join(string rendezvousHex, int rank, int worldSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(worldSize, 1);
        if (rank < 0 || rank >= worldSize)
            throw new ArgumentOutOfRangeException(nameof(rank), rank, $"The rank must lie in [0, {worldSize}).");
        var bytes = Convert.FromHexString(rendezvousHex);
        if (bytes.Length != 128)
            throw new ArgumentException("An NCCL rendezvous id is 128 bytes (256 hex characters).", nameof(rendezvousHex));
        var id = default(NcclNative.UniqueId);
        bytes.CopyTo(id);
        NcclNative.Check(NcclNative.ncclCommInitRank(out var comm, worldSize, id, rank), "ncclCommInitRank");
        return new NcclCommunicator(comm, rank, worldSize);
    }

    public void AllReduceSum(Tensor buffer)
    {
        var (pointer, count) = Check(buffer);
        // The legacy default stream (0) is the one TorchSharp queues its kernels on: NCCL runs after the backward pass.
        NcclNative.Check(NcclNative.ncclAllReduce(pointer, pointer, count, NcclNative.DataType.Float32, NcclNative.ReduceOp.Sum, _comm, IntPtr.Zero), "ncclAllReduce");
    }

    public void Broadcast(Tensor buffer)
    {
        var (pointer, count) = Check(buffer);
        NcclNative.Check(NcclNative.ncclBroadcast(pointer, pointer, count, NcclNative.DataType.Float32, 0, _comm, IntPtr.Zero), "ncclBroadcast");
    }

    private (IntPtr Pointer, nuint Count) Check(Tensor buffer)
    {
        ObjectDisposedException.ThrowIf(_comm == IntPtr.Zero, this);
        if (buffer.device_type != DeviceType.CUDA || buffer.dtype != ScalarType.Float32 || !buffer.is_contiguous())
            throw new ArgumentException("NCCL collectives take contiguous fp32 CUDA tensors.", nameof(buffer));
        return (THSTensor_data(buffer.Handle), (nuint)buffer.numel());
    }

    // TorchSharp 0.107 exposes no data pointer accessor; its native library has one.
    [LibraryImport("LibTorchSharp")]
    private static partial IntPtr THSTensor_data(IntPtr handle);

    public void Dispose()
    {
        if (_comm == IntPtr.Zero)
            return;
        NcclNative.ncclCommDestroy(_comm);
        _comm = IntPtr.Zero;
    }
}

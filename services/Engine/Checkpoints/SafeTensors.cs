using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AspireTune.Engine.Models;

namespace AspireTune.Engine.Checkpoints;

/// <summary>Element types the engine reads and writes.</summary>
public enum SafeTensorDType { F32, F16, BF16 }

/// <summary>One tensor's entry in a safetensors header: byte range relative to the data section.</summary>
public sealed record SafeTensorEntry(string Name, SafeTensorDType DType, long[] Shape, long Begin, long End)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// Reads and writes the safetensors format in managed code: the header is validated completely
/// (offsets, dtypes, sizes) before any tensor data reaches TorchSharp.
/// </summary>
public static class SafeTensors
{
    private const long MaxHeaderBytes = 100L * 1024 * 1024;

    /// <summary>Parses and validates the header; the data section starts at 8 + header length.</summary>
    public static (IReadOnlyDictionary<string, SafeTensorEntry> Entries, long DataStart, JsonObject? Metadata) ReadHeader(string path)
    {
        if (!File.Exists(path)) throw new ModelFormatException($"{path}: file not found", path);
        using var fs = File.OpenRead(path);
        var length = fs.Length;
        if (length < 8) throw new ModelFormatException($"{path}: truncated safetensors file ({length} bytes, no header)", path);
        Span<byte> lenBytes = stackalloc byte[8];
        fs.ReadExactly(lenBytes);
        var headerLen = BinaryPrimitives.ReadInt64LittleEndian(lenBytes);
        if (headerLen <= 0 || headerLen > MaxHeaderBytes || headerLen > length - 8)
            throw new ModelFormatException($"{path}: header length {headerLen} is invalid for a file of {length} bytes", path);
        var headerBytes = new byte[headerLen];
        fs.ReadExactly(headerBytes);
        JsonObject header;
        try
        {
            header = JsonNode.Parse(headerBytes) as JsonObject ?? throw new ModelFormatException($"{path}: header is not a JSON object", path);
        }
        catch (JsonException e)
        {
            throw new ModelFormatException($"{path}: header is not valid JSON ({e.Message})", path, inner: e);
        }
        var dataStart = 8 + headerLen;
        var dataLen = length - dataStart;
        var entries = new Dictionary<string, SafeTensorEntry>(StringComparer.Ordinal);
        JsonObject? metadata = null;
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__")
            {
                metadata = node as JsonObject;
                continue;
            }
            if (node is not JsonObject t)
                throw new ModelFormatException($"{path}: tensor '{name}' has no header object", path, name);
            var dtypeName = t["dtype"]?.GetValue<string>();
            SafeTensorDType dtype = dtypeName switch
            {
                "F32" => SafeTensorDType.F32,
                "F16" => SafeTensorDType.F16,
                "BF16" => SafeTensorDType.BF16,
                _ => throw new ModelFormatException(
                    $"{path}: tensor '{name}' has dtype '{dtypeName}', which is not supported (F32, F16, BF16)", path, name),
            };
            if (t["shape"] is not JsonArray shapeArr || t["data_offsets"] is not JsonArray offs || offs.Count != 2)
                throw new ModelFormatException($"{path}: tensor '{name}' lacks shape or data_offsets", path, name);
            long[] shape;
            long begin, end;
            try
            {
                shape = [.. shapeArr.Select(x => x!.GetValue<long>())];
                begin = offs[0]!.GetValue<long>();
                end = offs[1]!.GetValue<long>();
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException)
            {
                throw new ModelFormatException($"{path}: tensor '{name}' has a malformed shape or offsets", path, name, e);
            }
            if (shape.Any(d => d < 0))
                throw new ModelFormatException($"{path}: tensor '{name}' has a negative dimension", path, name);
            var entry = new SafeTensorEntry(name, dtype, shape, begin, end);
            var expected = checked(entry.ElementCount * ElementSize(dtype));
            if (begin < 0 || end < begin || end > dataLen)
                throw new ModelFormatException(
                    $"{path}: tensor '{name}' data [{begin}, {end}) lies past the end of the data section ({dataLen} bytes): file truncated?",
                    path, name);
            if (end - begin != expected)
                throw new ModelFormatException(
                    $"{path}: tensor '{name}' spans {end - begin} bytes but {dtype} [{string.Join(", ", shape)}] needs {expected}", path, name);
            entries[name] = entry;
        }
        return (entries, dataStart, metadata);
    }

    public static int ElementSize(SafeTensorDType dtype) => dtype == SafeTensorDType.F32 ? 4 : 2;

    /// <summary>Reads one validated tensor as float32 values.</summary>
    public static float[] ReadFloats(string path, long dataStart, SafeTensorEntry entry)
    {
        var count = checked((int)entry.ElementCount);
        var result = new float[count];
        using var fs = File.OpenRead(path);
        fs.Seek(dataStart + entry.Begin, SeekOrigin.Begin);
        var bytes = new byte[entry.End - entry.Begin];
        fs.ReadExactly(bytes);
        switch (entry.DType)
        {
            case SafeTensorDType.F32:
                Buffer.BlockCopy(bytes, 0, result, 0, bytes.Length);
                break;
            case SafeTensorDType.F16:
                for (var i = 0; i < count; i++)
                    result[i] = (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(2 * i)));
                break;
            case SafeTensorDType.BF16:
                for (var i = 0; i < count; i++)
                    result[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(2 * i)) << 16);
                break;
        }
        return result;
    }

    /// <summary>Writes tensors (float32 values) in the requested dtype, in the order given.</summary>
    public static void Write(string path, IEnumerable<(string Name, long[] Shape, float[] Data)> tensors, SafeTensorDType dtype,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var header = new JsonObject();
        var meta = new JsonObject { ["format"] = "pt" };
        if (metadata is not null) foreach (var (k, v) in metadata) meta[k] = v;
        header["__metadata__"] = meta;
        long offset = 0;
        var size = ElementSize(dtype);
        foreach (var (name, shape, data) in list)
        {
            var n = (long)data.Length * size;
            header[name] = new JsonObject
            {
                ["dtype"] = dtype.ToString(),
                ["shape"] = new JsonArray([.. shape.Select(s => (JsonNode)s)]),
                ["data_offsets"] = new JsonArray(offset, offset + n),
            };
            offset += n;
        }
        var headerBytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        // The data section starts 8-byte aligned, as the reference writer pads the header with spaces.
        var pad = (8 - headerBytes.Length % 8) % 8;
        var tmp = path + ".tmp";
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            Span<byte> len = stackalloc byte[8];
            BinaryPrimitives.WriteInt64LittleEndian(len, headerBytes.Length + pad);
            fs.Write(len);
            fs.Write(headerBytes);
            for (var i = 0; i < pad; i++) fs.WriteByte((byte)' ');
            foreach (var (_, _, data) in list)
            {
                if (dtype == SafeTensorDType.F32)
                {
                    var bytes = new byte[data.Length * 4];
                    Buffer.BlockCopy(data, 0, bytes, 0, bytes.Length);
                    fs.Write(bytes);
                    continue;
                }
                var half = new byte[data.Length * 2];
                for (var i = 0; i < data.Length; i++)
                {
                    ushort bits = dtype == SafeTensorDType.F16
                        ? BitConverter.HalfToUInt16Bits((Half)data[i])
                        : ToBFloat16(data[i]);
                    BinaryPrimitives.WriteUInt16LittleEndian(half.AsSpan(2 * i), bits);
                }
                fs.Write(half);
            }
        }
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Round to nearest even, as torch's float to bfloat16 conversion does.</summary>
    private static ushort ToBFloat16(float f)
    {
        var bits = BitConverter.SingleToUInt32Bits(f);
        if (float.IsNaN(f)) return 0x7FC0;
        var rounding = 0x7FFFu + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }
}

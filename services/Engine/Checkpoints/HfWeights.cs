using System.Text.Json;
using System.Text.Json.Nodes;
using AspireTune.Engine.Models;

namespace AspireTune.Engine.Checkpoints;

/// <summary>Where one tensor of a (possibly sharded) Hugging Face checkpoint lives.</summary>
public sealed record TensorLocation(string File, long DataStart, SafeTensorEntry Entry);

/// <summary>The weights of a Hugging Face directory: <c>model.safetensors</c> or a sharded index.</summary>
public static class HfWeights
{
    public const string SingleFile = "model.safetensors";
    public const string IndexFile = "model.safetensors.index.json";

    /// <summary>Validates every header and returns where each tensor is, by name.</summary>
    public static IReadOnlyDictionary<string, TensorLocation> Resolve(string directory)
    {
        var single = Path.Combine(directory, SingleFile);
        var index = Path.Combine(directory, IndexFile);
        var result = new Dictionary<string, TensorLocation>(StringComparer.Ordinal);
        if (File.Exists(single))
        {
            var (entries, start, _) = SafeTensors.ReadHeader(single);
            foreach (var (name, e) in entries) result[name] = new TensorLocation(single, start, e);
            return result;
        }
        if (!File.Exists(index))
            throw new ModelFormatException($"{directory}: neither {SingleFile} nor {IndexFile} is present", directory);
        JsonObject map;
        try
        {
            map = (JsonNode.Parse(File.ReadAllText(index)) as JsonObject)?["weight_map"] as JsonObject
                ?? throw new ModelFormatException($"{index}: 'weight_map' is missing", index);
        }
        catch (JsonException e)
        {
            throw new ModelFormatException($"{index}: not valid JSON ({e.Message})", index, inner: e);
        }
        var headers = new Dictionary<string, (IReadOnlyDictionary<string, SafeTensorEntry> Entries, long Start)>();
        foreach (var (name, fileNode) in map)
        {
            var file = fileNode?.GetValue<string>() ?? throw new ModelFormatException($"{index}: tensor '{name}' maps to no file", index, name);
            if (file.Contains('/') || file.Contains('\\') || file.Contains(".."))
                throw new ModelFormatException($"{index}: tensor '{name}' maps outside the model directory ('{file}')", index, name);
            var path = Path.Combine(directory, file);
            if (!headers.TryGetValue(file, out var h))
            {
                if (!File.Exists(path))
                    throw new ModelFormatException($"{index}: shard '{file}' (tensor '{name}') is missing", path, name);
                var (entries, start, _) = SafeTensors.ReadHeader(path);
                headers[file] = h = (entries, start);
            }
            if (!h.Entries.TryGetValue(name, out var entry))
                throw new ModelFormatException($"{path}: tensor '{name}' is listed in {IndexFile} but absent from the shard", path, name);
            result[name] = new TensorLocation(path, h.Start, entry);
        }
        return result;
    }

    /// <summary>
    /// The element type the directory's weights are stored in when every tensor shares one (a bf16 checkpoint), else F32:
    /// what a model that only adds LoRA updates to those weights is written back as, as PEFT's merge keeps the base's dtype.
    /// </summary>
    public static SafeTensorDType StoredDType(string directory)
    {
        var types = Resolve(directory).Values.Select(l => l.Entry.DType).Distinct().ToList();
        return types.Count == 1 ? types[0] : SafeTensorDType.F32;
    }

    /// <summary>Writes one file, or shards of at most <paramref name="maxShardBytes"/> plus the index.</summary>
    public static void Save(string directory, IReadOnlyList<(string Name, long[] Shape, float[] Data)> tensors,
        SafeTensorDType dtype, long maxShardBytes)
    {
        Directory.CreateDirectory(directory);
        var size = SafeTensors.ElementSize(dtype);
        var shards = new List<List<(string, long[], float[])>> { new() };
        long current = 0, total = 0;
        foreach (var t in tensors)
        {
            var bytes = (long)t.Data.Length * size;
            if (current > 0 && current + bytes > maxShardBytes)
            {
                shards.Add([]);
                current = 0;
            }
            shards[^1].Add(t);
            current += bytes;
            total += bytes;
        }
        foreach (var stale in Directory.EnumerateFiles(directory, "model*.safetensors*")) File.Delete(stale);
        if (shards.Count == 1)
        {
            SafeTensors.Write(Path.Combine(directory, SingleFile), shards[0], dtype);
            return;
        }
        var weightMap = new JsonObject();
        for (var i = 0; i < shards.Count; i++)
        {
            var name = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            SafeTensors.Write(Path.Combine(directory, name), shards[i], dtype);
            foreach (var (t, _, _) in shards[i]) weightMap[t] = name;
        }
        var indexJson = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = total }, ["weight_map"] = weightMap };
        File.WriteAllText(Path.Combine(directory, IndexFile), indexJson.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }
}

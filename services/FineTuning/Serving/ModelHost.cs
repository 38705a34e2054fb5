using AspireTune.FineTuning.Data;
using AspireTune.Engine.Generation;
using AspireTune.FineTuning.Jobs;
using AspireTune.Engine.Models;
using AspireTune.FineTuning.Registry;
using Microsoft.Extensions.Options;

namespace AspireTune.FineTuning.Serving;

/// <summary>
/// Registered models loaded for serving, at most <see cref="FineTuningOptions.MaxLoadedModels"/> at once
/// (least recently used unloaded first). Requests to one model run one at a time: a loaded model is a
/// single set of device tensors, and a queue keeps latency predictable instead of thrashing memory.
/// </summary>
public sealed class ModelHost(ModelRegistry registry, IOptions<FineTuningOptions> options, ILogger<ModelHost> logger) : IDisposable
{
    private readonly Dictionary<string, Entry> _loaded = [];
    private readonly SemaphoreSlim _loadLock = new(1, 1);

    private sealed class Entry(CausalLm model, string directory)
    {
        public CausalLm Model { get; } = model;
        public TextGenerator Generator { get; } = new(model);
        public string Directory { get; } = directory;
        public SemaphoreSlim Gate { get; } = new(1, 1);
        public long LastUsed;
    }

    /// <summary>Exclusive use of a loaded model until disposed.</summary>
    public sealed class Lease(TextGenerator generator, SemaphoreSlim gate) : IDisposable
    {
        public TextGenerator Generator { get; } = generator;
        public CausalLm Model => Generator.Model;
        public void Dispose() => gate.Release();
    }

    public async Task<Lease> AcquireAsync(RegisteredModel model, CancellationToken ct)
    {
        Entry entry;
        await _loadLock.WaitAsync(ct);
        try
        {
            var directory = await registry.MaterializeAsync(model, ct);
            if (!_loaded.TryGetValue(model.Id, out entry!) || entry.Directory != directory)
            {
                while (_loaded.Count >= options.Value.MaxLoadedModels)
                    await EvictAsync(_loaded.MinBy(e => e.Value.LastUsed).Key);
                var started = DateTime.UtcNow;
                var loaded = await Task.Run(() => CausalLm.Load(directory, CausalLm.DefaultDevice()), ct);
                entry = new Entry(loaded, directory);
                _loaded[model.Id] = entry;
                logger.LogInformation("Loaded model {Model} on {Device} in {Seconds:0.0} s", model.Id, loaded.Device, (DateTime.UtcNow - started).TotalSeconds);
            }
            entry.LastUsed = Environment.TickCount64;
        }
        finally
        {
            _loadLock.Release();
        }
        await entry.Gate.WaitAsync(ct);
        return new Lease(entry.Generator, entry.Gate);
    }

    /// <summary>Unloads a model (after delete), waiting for the request that uses it.</summary>
    public async Task UnloadAsync(string id)
    {
        await _loadLock.WaitAsync();
        try
        {
            await EvictAsync(id);
        }
        finally
        {
            _loadLock.Release();
        }
    }

    private async Task EvictAsync(string id)
    {
        if (!_loaded.Remove(id, out var entry))
            return;
        await entry.Gate.WaitAsync();
        entry.Model.Dispose();
        entry.Gate.Release();
    }

    public void Dispose()
    {
        foreach (var entry in _loaded.Values)
            entry.Model.Dispose();
        _loaded.Clear();
    }
}

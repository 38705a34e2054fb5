using AspireTune.FineTuning.Data;
using AspireTune.Engine.Generation;
using AspireTune.FineTuning.Jobs;
using AspireTune.Engine.Models;
using AspireTune.FineTuning.Registry;
using Microsoft.Extensions.Options;

namespace AspireTune.FineTuning.Serving;

/// <summary>
/// Registered models loaded for serving, at most <see cref="FineTuningOptions.MaxLoadedModels"/> at once
/// (least recently used unloaded first). Concurrent requests to one model are decoded together by its
/// <see cref="BatchedGenerator"/> (continuous batching over a key/value cache of
/// <see cref="FineTuningOptions.ServingKvCacheTokens"/> positions); a model is unloaded only once no request holds it.
/// </summary>
public sealed class ModelHost(ModelRegistry registry, IOptions<FineTuningOptions> options, ILogger<ModelHost> logger) : IDisposable
{
    private readonly Dictionary<string, Entry> _loaded = [];
    private readonly SemaphoreSlim _loadLock = new(1, 1);

    internal sealed class Entry(CausalLm model, string directory, BatchingOptions batching)
    {
        private readonly Lock _lock = new();
        private int _users;
        private TaskCompletionSource? _drained;

        public CausalLm Model { get; } = model;
        public BatchedGenerator Generator { get; } = new(model, batching);
        public string Directory { get; } = directory;
        public long LastUsed;

        public void Enter()
        {
            lock (_lock) _users++;
        }

        public void Exit()
        {
            lock (_lock)
                if (--_users == 0) _drained?.TrySetResult();
        }

        /// <summary>Completes once no request uses the model any more.</summary>
        public Task DrainAsync()
        {
            lock (_lock)
            {
                _drained ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                if (_users == 0) _drained.TrySetResult();
                return _drained.Task;
            }
        }
    }

    /// <summary>Use of a loaded model, shared with other requests, until disposed.</summary>
    public sealed class Lease : IDisposable
    {
        private Entry? _entry;

        internal Lease(Entry entry)
        {
            _entry = entry;
            Generator = entry.Generator;
        }

        public BatchedGenerator Generator { get; }
        public CausalLm Model => Generator.Model;

        public void Dispose() => Interlocked.Exchange(ref _entry, null)?.Exit();
    }

    public async Task<Lease> AcquireAsync(RegisteredModel model, CancellationToken ct)
    {
        await _loadLock.WaitAsync(ct);
        try
        {
            var directory = await registry.MaterializeAsync(model, ct);
            if (!_loaded.TryGetValue(model.Id, out var entry) || entry.Directory != directory)
            {
                while (_loaded.Count >= options.Value.MaxLoadedModels)
                    await EvictAsync(_loaded.MinBy(e => e.Value.LastUsed).Key);
                var started = DateTime.UtcNow;
                var device = CausalLm.DefaultDevice();
                // GPT-2 decodes through the engine's fp32 kernels on CUDA (Gpt2Decoder): a decode step is bound by
                // launches, not by reading the weights, so bf16 matmuls would only take it back to the plain path.
                var fp32Kernels = model.Architecture == "gpt2" && device.type == TorchSharp.DeviceType.CUDA;
                // Serving never trains: the weights are built frozen, and with bf16 matmuls held in bf16 only.
                var loaded = await Task.Run(() => CausalLm.Load(directory, device,
                    new ModelOptions { FrozenBase = true, BFloat16Matmuls = fp32Kernels ? false : null }), ct);
                entry = new Entry(loaded, directory, new BatchingOptions
                {
                    KvCacheTokens = options.Value.ServingKvCacheTokens,
                    MaxBatch = options.Value.ServingMaxBatch,
                });
                _loaded[model.Id] = entry;
                logger.LogInformation("Loaded model {Model} on {Device} in {Seconds:0.0} s", model.Id, loaded.Device, (DateTime.UtcNow - started).TotalSeconds);
            }
            entry.LastUsed = Environment.TickCount64;
            // Entered under the load lock, so an eviction (also under it) waits for this request.
            entry.Enter();
            return new Lease(entry);
        }
        finally
        {
            _loadLock.Release();
        }
    }

    /// <summary>Unloads a model (after delete), waiting for the requests that use it.</summary>
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
        await entry.DrainAsync();
        entry.Generator.Dispose();
        entry.Model.Dispose();
    }

    public void Dispose()
    {
        foreach (var entry in _loaded.Values)
        {
            entry.Generator.Dispose();
            entry.Model.Dispose();
        }
        _loaded.Clear();
    }
}

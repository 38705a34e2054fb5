using AspireTune.Engine.Checkpoints;
using AspireTune.Engine.Kernels;
using AspireTune.Engine.Tokenization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace AspireTune.Engine.Models;

/// <summary>How <see cref="CausalLm.Save"/> writes weights.</summary>
public sealed record SaveOptions
{
    /// <summary>Element type on disk; default F32.</summary>
    public SafeTensorDType DType { get; init; } = SafeTensorDType.F32;

    /// <summary>Largest shard in bytes before the weights are split with an index file; default 2 GiB.</summary>
    public long MaxShardBytes { get; init; } = 2L << 30;
}

/// <summary>How <see cref="CausalLm.Create"/> and <see cref="CausalLm.Load"/> build a model.</summary>
public sealed record ModelOptions
{
    /// <summary>Matmuls in bfloat16; default (null): on CUDA only.</summary>
    public bool? BFloat16Matmuls { get; init; }

    /// <summary>
    /// The base will not be trained (LoRA fine-tuning, serving): every parameter is created frozen and, with bf16
    /// matmuls, the matrices (projections, embeddings, head) are created in bf16, so no fp32 copy of the base ever
    /// exists, not even while loading. Default false: fp32 parameters, which <see cref="CausalLm.AddLora"/> then
    /// freezes and casts once the fp32 values were loaded.
    /// </summary>
    public bool FrozenBase { get; init; }
}

/// <summary>LoRA adapter settings.</summary>
public sealed record LoraOptions
{
    /// <summary>Adapter rank r; default 8.</summary>
    public int Rank { get; init; } = 8;

    /// <summary>Scale numerator: the update is multiplied by alpha / r; default 16.</summary>
    public double Alpha { get; init; } = 16;

    /// <summary>Dropout on the adapter input during training; default 0.05.</summary>
    public double Dropout { get; init; } = 0.05;

    /// <summary>Short names of the projections to adapt (q_proj, v_proj, c_attn, ...); default attention q/v (Llama) or c_attn (GPT-2).</summary>
    public IReadOnlyList<string>? TargetModules { get; init; }
}

/// <summary>
/// A decoder-only language model (GPT-2 or Llama family) with its config and tokenizer, loaded from or saved
/// to a Hugging Face directory. Parameters are fp32; on CUDA, matmuls run in bfloat16 by default, and a frozen base
/// (LoRA, <see cref="ModelOptions.FrozenBase"/>) keeps its matrices in bfloat16 only.
/// </summary>
public sealed class CausalLm : IDisposable
{
    private static readonly Lock DefaultDeviceLock = new();

    private CausalLm(ModelConfig config, ITokenizer? tokenizer, Device device, ModelOptions? options)
    {
        Config = config;
        Tokenizer = tokenizer;
        Device = device;
        var bf16 = options?.BFloat16Matmuls ?? device.type == DeviceType.CUDA;
        var frozenMatrices = options?.FrozenBase == true && bf16 ? ScalarType.BFloat16 : (ScalarType?)null;
        lock (DefaultDeviceLock)
        {
            // Build directly on the target device: moving modules later would leave field references behind.
            var previous = get_default_device();
            set_default_device(device);
            try
            {
                Network = config.Architecture == ModelArchitecture.Gpt2 ? new Gpt2Network(config, frozenMatrices) : new LlamaNetwork(config, frozenMatrices);
            }
            finally
            {
                set_default_device(previous);
            }
        }
        if (options?.FrozenBase == true)
            foreach (var p in Network.parameters()) p.requires_grad = false;
        BFloat16Matmuls = bf16;
        FusedKernels = true;
        Network.eval();
    }

    public ModelConfig Config { get; }
    public ModelArchitecture Architecture => Config.Architecture;

    /// <summary>generation_config.json as loaded (its eos ids end generation), or what config.json implies.</summary>
    public GenerationConfig Generation { get; set; } = null!;

    /// <summary>
    /// The ids a generation ends at: generation_config.json's <c>eos_token_id</c> (one or a list) and the tokenizer's
    /// eos_token (tokenizer_config.json), as vLLM stops a chat at either.
    /// </summary>
    public IReadOnlySet<int> StopTokenIds =>
        Generation.EosTokenIds.Concat(Tokenizer?.EosTokenId is { } eos ? [eos] : Config.EosTokenId is { } e ? [e] : []).ToHashSet();

    /// <summary>The checkpoint's tokenizer; null when the directory had none (token-id prompts only).</summary>
    public ITokenizer? Tokenizer { get; set; }

    public Device Device { get; }
    internal DecoderNetwork Network { get; }

    /// <summary>True while an adapter is attached (see <see cref="AddLora"/>).</summary>
    public bool HasLora { get; private set; }

    /// <summary>
    /// Run matmuls in bfloat16 with fp32 master weights (default on CUDA, off on CPU). Set it before <see cref="AddLora"/>:
    /// the frozen base is then stored in bf16; turned off afterwards, those bf16 weights are widened at each matmul.
    /// </summary>
    public bool BFloat16Matmuls
    {
        get => Network.Settings.MatmulDType == ScalarType.BFloat16;
        set => Network.Settings.MatmulDType = value ? ScalarType.BFloat16 : null;
    }

    /// <summary>
    /// Use the engine's fused CUDA kernels (chunked cross-entropy, one-launch AdamW) where they can run; on by
    /// default. Without a GPU, or with <c>ASPIRETUNE_FUSED_KERNELS=0</c>, the plain TorchSharp path runs.
    /// </summary>
    public bool FusedKernels
    {
        get => _fusedKernels;
        set
        {
            _fusedKernels = value;
            Network.Settings.Kernels = value ? EngineKernels.For(Device) : null;
        }
    }

    private bool _fusedKernels;

    /// <summary>The fused kernels this model uses now, or null.</summary>
    internal EngineKernels? Kernels => FusedKernels ? EngineKernels.For(Device) : null;

    /// <summary>Number of parameters of the base model (adapters excluded).</summary>
    public long ParameterCount => NamedParameters().Where(p => !IsLoraName(p.Name)).Sum(p => p.Parameter.numel());

    /// <summary>Parameters by their Hugging Face state-dict names.</summary>
    public IReadOnlyList<(string Name, Parameter Parameter)> NamedParameters() =>
        [.. Network.named_parameters().Select(p => (p.name, p.parameter))];

    /// <summary>The best device here: CUDA when available, else CPU.</summary>
    public static Device DefaultDevice() => cuda.is_available() ? CUDA : CPU;

    /// <summary>A randomly initialised model, as transformers initialises a fresh one (normal 0.02).</summary>
    public static CausalLm Create(ModelConfig config, ITokenizer? tokenizer = null, long seed = 0, Device? device = null, ModelOptions? options = null)
    {
        if (tokenizer is not null && tokenizer.Count > config.VocabSize)
            throw new ArgumentException($"tokenizer has {tokenizer.Count} tokens but the config's vocab_size is {config.VocabSize}");
        manual_seed(seed);
        // TorchSharp's manual_seed leaves the CUDA generators alone: without this, the seed would not fix a GPU init.
        if ((device ?? CPU).type == DeviceType.CUDA) cuda.manual_seed_all(seed);
        var model = new CausalLm(config, tokenizer, device ?? CPU, options) { Generation = GenerationConfig.From(config) };
        model.Network.InitializeWeights();
        return model;
    }

    /// <summary>
    /// Loads config.json, the safetensors weights (single or sharded; F32/F16/BF16) and the tokenizer files.
    /// Every problem is a <see cref="ModelFormatException"/> naming the file and tensor.
    /// </summary>
    public static CausalLm Load(string directory, Device? device = null, ModelOptions? options = null)
    {
        if (!Directory.Exists(directory)) throw new ModelFormatException($"{directory}: model directory not found", directory);
        var config = ModelConfig.Load(Path.Combine(directory, "config.json"));
        var weights = HfWeights.Resolve(directory);
        var tokenizer = TokenizerFiles.TryLoad(directory);
        if (tokenizer is not null && tokenizer.Count > config.VocabSize)
            throw new ModelFormatException(
                $"{directory}: tokenizer files define {tokenizer.Count} tokens but config.json vocab_size is {config.VocabSize}", directory);
        var generation = GenerationConfig.Load(directory, config);
        var model = new CausalLm(config, tokenizer, device ?? CPU, options) { Generation = generation };
        try
        {
            model.LoadWeights(weights);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return model;
    }

    private void LoadWeights(IReadOnlyDictionary<string, TensorLocation> weights)
    {
        var byCanonical = new Dictionary<string, TensorLocation>(StringComparer.Ordinal);
        foreach (var (name, loc) in weights) byCanonical[Network.Canonical(name)] = loc;
        var parameters = NamedParameters().Where(p => !IsLoraName(p.Name)).ToList();
        // Validate every tensor first so that a bad file leaves nothing half-loaded.
        foreach (var (name, p) in parameters)
        {
            if (!byCanonical.TryGetValue(name, out var loc))
                throw new ModelFormatException(
                    $"{weights.Values.FirstOrDefault()?.File ?? "weights"}: tensor '{name}' is missing (needed by {Config})", null, name);
            if (!loc.Entry.Shape.SequenceEqual(p.shape))
                throw new ModelFormatException(
                    $"{loc.File}: tensor '{loc.Entry.Name}' has shape [{string.Join(", ", loc.Entry.Shape)}] but config.json implies [{string.Join(", ", p.shape)}]",
                    loc.File, loc.Entry.Name);
        }
        using var _ = no_grad();
        foreach (var (name, p) in parameters)
        {
            var loc = byCanonical[name];
            var data = SafeTensors.ReadFloats(loc.File, loc.DataStart, loc.Entry);
            using var t = tensor(data, loc.Entry.Shape);
            p.copy_(t);
        }
    }

    /// <summary>
    /// Writes config.json (its torch_dtype the one written), generation_config.json (keys as loaded, eos list included),
    /// the weights (LoRA merged in, adapters not written) and the tokenizer files: a directory transformers'
    /// <c>from_pretrained</c> loads.
    /// </summary>
    public void Save(string directory, SaveOptions? options = null)
    {
        options ??= new SaveOptions();
        Directory.CreateDirectory(directory);
        Config.Save(Path.Combine(directory, "config.json"), options.DType switch
        {
            SafeTensorDType.BF16 => "bfloat16", SafeTensorDType.F16 => "float16", _ => "float32",
        });
        File.WriteAllText(Path.Combine(directory, GenerationConfig.FileName),
            Generation.ToJson(Config).ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        HfWeights.Save(directory, ExportTensors(), options.DType, options.MaxShardBytes);
        Tokenizer?.Save(directory);
    }

    /// <summary>
    /// The base weights with any LoRA update folded in, as float32 arrays by HF name. The update is added in fp32 to the
    /// stored base (bf16 where the base is frozen in bf16: the values it trained against), then rounded only by the
    /// dtype the caller writes.
    /// </summary>
    public IReadOnlyList<(string Name, long[] Shape, float[] Data)> ExportTensors()
    {
        var result = new List<(string, long[], float[])>();
        var lora = Network.Projections().Where(p => p.Layer.lora_A is not null).ToDictionary(p => p.Layer.weight.Handle, p => p.Layer);
        using var _ = no_grad();
        foreach (var (name, p) in NamedParameters())
        {
            if (IsLoraName(name)) continue;
            using var scope = NewDisposeScope();
            Tensor t = p;
            if (lora.TryGetValue(p.Handle, out var layer))
            {
                var delta = matmul(layer.lora_B!, layer.lora_A!).mul(layer.LoraScale);
                var baseWeight = p.to(ScalarType.Float32);
                t = layer.Conv1D ? baseWeight + delta.t() : baseWeight + delta;
            }
            result.Add((name, p.shape, t.detach().to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray()));
        }
        return result;
    }

    /// <summary>
    /// Attaches LoRA adapters (fp32) to the target projections and freezes every other parameter; with bf16 matmuls the
    /// frozen matrices are then stored in bf16 only (<see cref="DecoderNetwork.StoreFrozenMatricesIn"/>), as PEFT holds
    /// a bf16 base. Parameters taken from <see cref="NamedParameters"/> before this call are stale after it.
    /// </summary>
    public void AddLora(LoraOptions options)
    {
        if (HasLora) throw new InvalidOperationException("the model already has LoRA adapters");
        var targets = options.TargetModules ?? (Architecture == ModelArchitecture.Gpt2 ? ["c_attn"] : ["q_proj", "v_proj"]);
        var known = Network.Projections().Select(p => p.ShortName).ToHashSet();
        var unknown = targets.Where(t => !known.Contains(t)).ToList();
        if (unknown.Count > 0)
            throw new ArgumentException($"LoRA target modules {string.Join(", ", unknown)} do not exist in {Config.ModelType} (known: {string.Join(", ", known)})");
        foreach (var p in Network.parameters()) p.requires_grad = false;
        lock (DefaultDeviceLock)
        {
            var previous = get_default_device();
            set_default_device(Device);
            try
            {
                foreach (var (name, layer) in Network.Projections())
                    if (targets.Contains(name)) layer.AddLora(options.Rank, options.Alpha);
            }
            finally
            {
                set_default_device(previous);
            }
        }
        if (Network.Settings.MatmulDType is { } dtype) Network.StoreFrozenMatricesIn(dtype);
        Network.Settings.LoraDropout = options.Dropout;
        HasLora = true;
    }

    /// <summary>
    /// Turns the LoRA adapters off until the returned scope is disposed: the model then computes what its base
    /// weights alone compute (the frozen reference of preference training), without copying them.
    /// </summary>
    public IDisposable WithoutAdapters()
    {
        var previous = Network.Settings.AdaptersDisabled;
        Network.Settings.AdaptersDisabled = true;
        return new Restore(() => Network.Settings.AdaptersDisabled = previous);
    }

    private sealed class Restore(Action restore) : IDisposable
    {
        public void Dispose() => restore();
    }

    /// <summary>Folds the adapters into the base weights (they remain attached but contribute zero).</summary>
    public void MergeLora()
    {
        foreach (var (_, layer) in Network.Projections()) layer.MergeLora();
    }

    /// <summary>Overrides the config's dropout probabilities for training (null keeps the config's).</summary>
    public void SetDropout(double? embedding, double? attention, double? residual)
    {
        if (embedding is { } e) Network.Settings.EmbeddingDropout = e;
        if (attention is { } a) Network.Settings.AttentionDropout = a;
        if (residual is { } r) Network.Settings.ResidualDropout = r;
    }

    /// <summary>Training mode turns dropout on; evaluation mode (the default) turns it off.</summary>
    public void SetTraining(bool training)
    {
        if (training) Network.train(); else Network.eval();
    }

    /// <summary>Logits [B, T, V] (float32) for token ids [B, T]; pass a cache to decode incrementally.</summary>
    public Tensor Forward(Tensor inputIds, Tensor? attentionMask = null, KvCache? cache = null)
    {
        var logits = Network.Forward(inputIds, attentionMask, cache);
        if (logits.dtype == ScalarType.Float32) return logits;
        var result = logits.to(ScalarType.Float32);
        logits.Dispose();
        return result;
    }

    /// <summary>
    /// Summed cross-entropy of <paramref name="targets"/> [B, T] (the token each position should predict,
    /// -100 where no loss applies) for <paramref name="inputIds"/> [B, T]. With the fused kernels (CUDA, bf16
    /// matmuls) the head and its softmax run in chunks of rows and no logits tensor for the batch exists; otherwise
    /// the logits are released as soon as autograd no longer needs them, and log-softmax reads them in the matmul
    /// dtype and writes float32 directly.
    /// </summary>
    /// <param name="inputIds">Token ids [B, T].</param>
    /// <param name="targets">Next-token targets [B, T], -100 where no loss applies.</param>
    /// <param name="positions">Packed sequences: positions [B, T] restarting at 0 for each example.</param>
    /// <param name="attentionMask">Packed sequences: the boolean mask [B, 1, T, T], causal within each example only.</param>
    public Tensor LossSum(Tensor inputIds, Tensor targets, Tensor? positions = null, Tensor? attentionMask = null)
    {
        if (Kernels is { } kernels && Network.Settings.MatmulDType == ScalarType.BFloat16)
            return LossSumChunked(inputIds, targets, ChunkedCrossEntropy.DefaultChunkRows(Config.VocabSize), kernels.CrossEntropy, positions, attentionMask);
        using var scope = NewDisposeScope();
        var logits = Network.Forward(inputIds, attentionMask, null, positions);
        var logp = logits.view(-1, logits.shape[2]).log_softmax(-1, ScalarType.Float32);
        logits.Dispose();
        var t = targets.reshape(-1);
        var picked = logp.gather(1, t.clamp_min(0).unsqueeze(1)).squeeze(1);
        var loss = picked.mul(t.ne(-100)).sum().neg();
        return scope.MoveToOuter(loss);
    }

    /// <summary>
    /// Log-probability of each row's targets, summed over the row: [B] float32 for token ids [B, T] and next-token
    /// targets [B, T] (-100 where no target applies). With completion-only targets this is log p(completion | prompt),
    /// the sequence score preference training compares.
    /// </summary>
    public Tensor TargetLogProbs(Tensor inputIds, Tensor targets)
    {
        using var scope = NewDisposeScope();
        var logits = Network.Forward(inputIds, null, null);
        var logp = logits.log_softmax(-1, ScalarType.Float32);
        logits.Dispose();
        var picked = logp.gather(2, targets.clamp_min(0).unsqueeze(2)).squeeze(2);
        return scope.MoveToOuter(picked.mul(targets.ne(-100)).sum(1));
    }

    /// <summary><see cref="LossSum"/> through <see cref="ChunkedCrossEntropy"/> with the given row kernel and chunk size.</summary>
    internal Tensor LossSumChunked(Tensor inputIds, Tensor targets, long chunkRows, ChunkedCrossEntropy.RowKernel kernel,
        Tensor? positions = null, Tensor? attentionMask = null)
    {
        using var scope = NewDisposeScope();
        var hidden = Network.Hidden(inputIds, attentionMask, null, positions);
        var loss = ChunkedCrossEntropy.Sum(hidden, Network.HeadWeight, targets, Network.Settings.MatmulDType, chunkRows, kernel);
        return scope.MoveToOuter(loss);
    }

    /// <summary>A fresh cache sized for this model.</summary>
    public KvCache NewCache() => new(Config.NumLayers);

    internal static bool IsLoraName(string name) => name.Contains(".lora_A", StringComparison.Ordinal) || name.Contains(".lora_B", StringComparison.Ordinal);

    public void Dispose() => Network.Dispose();
}

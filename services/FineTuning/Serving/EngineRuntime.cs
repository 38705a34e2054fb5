using System.Collections.Concurrent;
using AspireTune.Engine.Checkpoints;
using AspireTune.FineTuning.Jobs;
using AspireTune.Engine.Models;
using AspireTune.Engine.Tokenization;
using AspireTune.Engine.Training;
using Microsoft.Extensions.Options;

namespace AspireTune.FineTuning.Serving;

/// <summary>Shape of the built-in base model (section <c>FineTuning:BuiltIn</c>): GPT-2 layout over the 257-token byte vocabulary.</summary>
public sealed class BuiltInModelOptions
{
    public const string SectionName = "FineTuning:BuiltIn";

    /// <summary>Transformer blocks. Default 4.</summary>
    [System.ComponentModel.DataAnnotations.Range(1, 48)] public int Layers { get; set; } = 4;

    /// <summary>Hidden size (a multiple of <see cref="Heads"/>). Default 128.</summary>
    [System.ComponentModel.DataAnnotations.Range(8, 4096)] public int Hidden { get; set; } = 128;

    /// <summary>Attention heads. Default 4.</summary>
    [System.ComponentModel.DataAnnotations.Range(1, 64)] public int Heads { get; set; } = 4;

    /// <summary>Context length in tokens (bytes, with this vocabulary). Default 1024: a short email with its prompt fits.</summary>
    [System.ComponentModel.DataAnnotations.Range(16, 8192)] public int Context { get; set; } = 1024;

    /// <summary>Initialisation seed, so every install starts from the same weights. Default 1.</summary>
    public int Seed { get; set; } = 1;
}

/// <summary>The model engine behind <see cref="IModelRuntime"/>.</summary>
public sealed class EngineRuntime(IOptions<BuiltInModelOptions> builtIn) : IModelRuntime
{
    private readonly ConcurrentDictionary<string, (DateTime Written, ITokenizer? Tokenizer)> _tokenizers = new();

    public ModelDescription Describe(string directory)
    {
        try
        {
            if (!Directory.Exists(directory))
                throw new ModelDirectoryException($"The directory '{directory}' does not exist.");
            var configPath = Path.Combine(directory, "config.json");
            if (!File.Exists(configPath))
                throw new ModelDirectoryException($"'{directory}' has no config.json: it is not a Hugging Face model directory.");
            var config = ModelConfig.Load(configPath);
            // Read now so that an eos id it cannot honour is refused at import, not at the first request.
            GenerationConfig.Load(directory, config);
            // Header-only read: names, dtypes and shapes, checked by the engine, without loading a weight.
            var parameters = HfWeights.Resolve(directory).Values.Sum(t => t.Entry.ElementCount);
            var tokenizer = Tokenizer(directory);
            if (tokenizer is not null && tokenizer.Count > config.VocabSize)
                throw new ModelDirectoryException($"'{directory}': the tokenizer defines {tokenizer.Count} tokens but config.json vocab_size is {config.VocabSize}.");
            return new ModelDescription(config.ModelType, parameters, config.MaxPositions, tokenizer is not null);
        }
        catch (ModelFormatException ex)
        {
            throw new ModelDirectoryException(ex.Message, ex);
        }
    }

    public void CreateBuiltIn(string directory)
    {
        var o = builtIn.Value;
        var tokenizer = ByteLevelBpeTokenizer.CreateByteLevel();
        using var model = CausalLm.Create(ModelConfig.Gpt2(tokenizer.Count, o.Hidden, o.Layers, o.Heads, o.Context), tokenizer, o.Seed);
        model.Save(directory);
    }

    public void ExportCheckpoint(string baseDirectory, string checkpointDirectory, Hyperparameters hyperparameters, string directory)
    {
        // On the CPU: the export only copies weights and folds adapters in, and a GPU stays free for training and serving.
        using var model = CausalLm.Load(baseDirectory);
        try
        {
            CheckpointWeights.Apply(model, checkpointDirectory, hyperparameters.ToLoraOptions());
        }
        catch (ModelFormatException ex)
        {
            throw new ModelDirectoryException($"The checkpoint does not fit its base model: {ex.Message}", ex);
        }
        // As the job writes its final model: a LoRA checkpoint in its base's dtype, a full one in fp32.
        model.Save(directory, new SaveOptions { DType = hyperparameters.ToLoraOptions() is null ? SafeTensorDType.F32 : HfWeights.StoredDType(baseDirectory) });
    }

    public Func<string, int> TokenCounter(string directory)
    {
        var tokenizer = Tokenizer(directory) ?? throw new ModelDirectoryException($"'{directory}' has no tokenizer files.");
        return text => tokenizer.Encode(text).Count;
    }

    /// <summary>The directory's tokenizer, cached until its files change; null when it has none.</summary>
    internal ITokenizer? Tokenizer(string directory)
    {
        var stamp = Directory.Exists(directory) ? Directory.GetFiles(directory).Select(File.GetLastWriteTimeUtc).DefaultIfEmpty().Max() : default;
        var entry = _tokenizers.GetOrAdd(directory, d => (stamp, TokenizerFiles.TryLoad(d)));
        if (entry.Written == stamp)
            return entry.Tokenizer;
        var fresh = (stamp, TokenizerFiles.TryLoad(directory));
        _tokenizers[directory] = fresh;
        return fresh.Item2;
    }
}

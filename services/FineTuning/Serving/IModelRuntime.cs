namespace AspireTune.FineTuning.Serving;

/// <summary>What the registry needs to know about a model directory.</summary>
public sealed record ModelDescription(string Architecture, long Parameters, int MaxPositions, bool HasTokenizer);

/// <summary>A model directory could not be read as a model; the message says which file and why.</summary>
public sealed class ModelDirectoryException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The service's one door to the model engine (TorchSharp networks, tokenizers, trainer, generator), so the
/// jobs, registry and serving code speak in its terms only.
/// </summary>
public interface IModelRuntime
{
    /// <summary>Reads config.json (and tokenizer files) of a Hugging Face directory; throws <see cref="ModelDirectoryException"/>.</summary>
    ModelDescription Describe(string directory);

    /// <summary>Writes the built-in base model (random initialisation, GPT-2 shape, byte-level tokenizer) into an empty directory.</summary>
    void CreateBuiltIn(string directory);

    /// <summary>
    /// Writes a job's training checkpoint as a model directory: the base model set up as the job trained it (its LoRA
    /// adapters), with the checkpoint's weights, adapters folded in. Throws <see cref="ModelDirectoryException"/> when
    /// the checkpoint does not fit the base model.
    /// </summary>
    void ExportCheckpoint(string baseDirectory, string checkpointDirectory, Jobs.Hyperparameters hyperparameters, string directory);

    /// <summary>Counts the tokens of text under the model's tokenizer (for the quality gate).</summary>
    Func<string, int> TokenCounter(string directory);
}

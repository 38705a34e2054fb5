using AspireTune.Engine.Models;

namespace AspireTune.Engine.Training;

/// <summary>
/// A training checkpoint as a model: a checkpoint folder holds only the run's trainable weights (and its optimizer
/// state), so serving one means loading the base model, setting it up as the run did (the same LoRA adapters) and
/// putting the checkpoint's weights in. Saving the model afterwards folds the adapters in, as the run's own model is.
/// </summary>
public static class CheckpointWeights
{
    /// <summary>
    /// Puts the weights of <paramref name="checkpointDirectory"/> (a <c>checkpoint-NNNNNN</c> folder) into
    /// <paramref name="model"/>, freshly loaded from the run's base model; <paramref name="lora"/> is the run's LoRA
    /// setting (null for full fine-tuning). Returns the checkpoint's step. A checkpoint of another model or setting is
    /// refused with <see cref="ModelFormatException"/> naming the tensor that does not fit.
    /// </summary>
    public static int Apply(CausalLm model, string checkpointDirectory, LoraOptions? lora)
    {
        var statePath = Path.Combine(checkpointDirectory, TrainerCheckpoints.StateFile);
        if (!File.Exists(statePath))
            throw new DirectoryNotFoundException($"{checkpointDirectory}: not a training checkpoint (no {TrainerCheckpoints.StateFile})");
        var state = TrainerState.Load(statePath);
        if (lora is not null && !model.HasLora) model.AddLora(lora);
        // The trainer's own grouping of its trainable parameters, so the checkpoint's flat groups line up.
        var trainable = model.NamedParameters().Where(p => p.Parameter.requires_grad).ToList();
        using var flat = new FlatParameters(trainable, weightDecay: 0, model.Device);
        flat.Restore(TrainerCheckpoints.LoadFlat(checkpointDirectory, flat));
        return state.Step;
    }
}

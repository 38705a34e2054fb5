using System.ComponentModel.DataAnnotations;

namespace AspireTune.Engine.Training;

/// <summary>One preference pair: the same prompt, an answer to prefer and one not to (the loss covers only the answers).</summary>
public sealed record DpoExample(string Prompt, string Chosen, string Rejected);

/// <summary>Hyperparameters of a preference (DPO) run.</summary>
public sealed record DpoOptions
{
    /// <summary>
    /// The training loop's settings, as supervised training takes them: epochs, batch size (pairs per micro-batch),
    /// learning rate and schedule, AdamW, clipping, evaluation and early stopping (on the validation DPO loss),
    /// checkpoints, LoRA, sequence length, dropout. <see cref="SftOptions.Packing"/> and exact match do not apply.
    /// </summary>
    public SftOptions Training { get; init; } = new();

    /// <summary>
    /// beta: how far the policy may move from the reference; the loss is -log sigmoid(beta x margin), where margin is
    /// (log pi - log ref) of the preferred answer minus that of the other. Default 0.1.
    /// </summary>
    [Range(1e-4, 100)] public double Beta { get; init; } = 0.1;
}

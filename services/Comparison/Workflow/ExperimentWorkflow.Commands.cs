using AspireTune.Comparison.Curation;
using AspireTune.Comparison.Data;
using AspireTune.Contracts.Common;
using AspireTune.Contracts.Evaluation;
using AspireTune.Contracts.FineTuning;

namespace AspireTune.Comparison.Workflow;

/// <summary>The commands an experiment sends to the other services, built from its stored state so a resend is the same command.</summary>
public sealed partial class ExperimentWorkflow
{
    /// <summary>The fine-tuning command, its files rebuilt from the stored splits (same bytes, same artifact ids).</summary>
    private async Task<StartFineTuning> FineTuningCommandAsync(Experiment experiment, string baseModel, CancellationToken ct)
    {
        var prefix = $"experiments/{experiment.Id:N}";
        async Task<ArtifactRef> ChatSplitAsync(string? split, string name) =>
            await PutChatSplitAsync(prefix, name, DatasetReader.Parse(await artifacts.ReadVerifiedAsync(Artifact(split), ct)).Examples, ct);
        return new StartFineTuning
        {
            JobId = experiment.FineTuningJobId!.Value,
            ExperimentId = experiment.Id,
            BaseModel = baseModel,
            TrainingFile = await ChatSplitAsync(experiment.TrainArtifactJson, "ft-train.jsonl"),
            ValidationFile = await ChatSplitAsync(experiment.ValidationArtifactJson, "ft-validation.jsonl"),
            Suffix = Slug(experiment),
            Hyperparameters = Options.FineTuningHyperparameters,
        };
    }

    private RunEvaluation Evaluate(Experiment experiment, Guid runId, IReadOnlyList<string> prompts, IReadOnlyList<string> endpoints, ArtifactRef dataset) => new()
    {
        RunId = runId,
        ExperimentId = experiment.Id,
        Prompts = prompts,
        ModelEndpoints = endpoints,
        Dataset = dataset,
        Scorers = ["label", "label-likelihood"],
        Temperature = 0,
        MaxTokens = 8,
    };
}

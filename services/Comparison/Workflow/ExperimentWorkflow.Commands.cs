using AspireTune.Comparison.Curation;
using AspireTune.Comparison.Data;
using AspireTune.Contracts.Common;
using AspireTune.Contracts.Comparison;
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
        async Task<ArtifactRef> ChatSplitAsync(ArtifactRef? split, string name) =>
            await PutChatSplitAsync(prefix, name, DatasetReader.Parse(await artifacts.ReadVerifiedAsync(Artifact(split), ct)).Examples, Request(experiment).Task, ct);
        return new StartFineTuning
        {
            JobId = experiment.FineTuningJobId!.Value,
            ExperimentId = experiment.Id,
            BaseModel = baseModel,
            TrainingFile = await ChatSplitAsync(experiment.TrainArtifact, "ft-train.jsonl"),
            ValidationFile = await ChatSplitAsync(experiment.ValidationArtifact, "ft-validation.jsonl"),
            Suffix = Slug(experiment),
            Hyperparameters = Options.FineTuningHyperparameters,
        };
    }

    /// <summary>
    /// A run of the experiment's scorers (by its task) on a split; greedy answers, output budget sized to the task;
    /// on models served here a classification answer is constrained to the labels.
    /// </summary>
    private RunEvaluation Evaluate(Experiment experiment, Guid runId, IReadOnlyList<string> prompts, IReadOnlyList<string> endpoints, ArtifactRef dataset)
    {
        var request = Request(experiment);
        var curation = Curation(experiment);
        return new()
        {
            RunId = runId,
            ExperimentId = experiment.Id,
            Prompts = prompts,
            ModelEndpoints = endpoints,
            Dataset = dataset,
            Scorers = TaskScoring.Scorers(request.Task, curation, request.JudgeEndpoint ?? Options.JudgeEndpoint),
            Temperature = 0,
            MaxTokens = TaskScoring.MaxTokens(request.Task, curation, Options.GenerationMaxTokens),
            JudgeRubric = TaskScoring.JudgeRubric(request.Task, request.Instruction),
            // AspireTune's own models answer with a label only (guided_choice); hosted APIs would refuse the parameter.
            ConstrainToLabels = request.Task == ExperimentTask.Classification && endpoints.All(e => ServedHere(experiment, request, e)),
            // Every label of the experiment, also those a split happens to lack: what answers are read as, scored among and constrained to.
            Labels = request.Task == ExperimentTask.Classification ? [.. curation.LabelCounts.Keys] : null,
        };
    }

    /// <summary>The fine-tuned model's endpoint, or the base model served here (what an experiment naming no endpoint prompts).</summary>
    private static bool ServedHere(Experiment experiment, StartExperiment request, string endpoint) =>
        request.ModelEndpoints.Count == 0 || experiment.Candidates.Any(c => c.Kind == CandidateKind.FineTuned && c.ModelEndpoint == endpoint);
}

using AspireTune.Comparison.Curation;
using AspireTune.Comparison.Data;
using AspireTune.Contracts.Common;
using AspireTune.Contracts.Evaluation;
using AspireTune.Contracts.Comparison;
using AspireTune.Contracts.FineTuning;
using AspireTune.Contracts.Retrieval;
using MassTransit;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.Comparison.Workflow;

/// <summary>The commands an experiment sends to the other services, built from its stored state so a resend is the same command; and the resend after a restart.</summary>
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

    /// <summary>
    /// After a restart: sends again every command a running experiment still waits on. The commands keep their
    /// ids (run ids, job id), and every receiving consumer is idempotent, so work already done is not repeated;
    /// a command lost with an in-memory transport, or never sent before a crash, now arrives.
    /// </summary>
    public async Task<int> ResendOutstandingAsync(Guid experimentId, ISendEndpointProvider send, CancellationToken ct)
    {
        var experiment = await db.Experiments.AsNoTracking().Include(e => e.Candidates).FirstOrDefaultAsync(e => e.Id == experimentId, ct);
        if (experiment is not { Status: ExperimentStatus.Running } || experiment.TestArtifactJson is null)
            return 0;
        var sent = 0;
        foreach (var c in experiment.Candidates)
        {
            if (c is { Kind: CandidateKind.Prompted, Status: CandidateStatus.Tuning, TuningRunId: { } tuningRun })
                await SendAsync(send, RunEvaluationQueue, Evaluate(experiment, tuningRun, c.Prompts!.Split(','), [c.ModelEndpoint!], Artifact(experiment.ValidationArtifactJson)), ct);
            else if (c is { Status: CandidateStatus.Evaluating, TestRunId: { } testRun })
                await SendAsync(send, RunEvaluationQueue, Evaluate(experiment, testRun, [c.Prompts!], [c.ModelEndpoint!], Artifact(experiment.TestArtifactJson)) with
                {
                    RetrievalCollection = c.Kind == CandidateKind.Retrieval ? experiment.Collection : null,
                    RetrievalTopK = Options.RetrievalExamples,
                }, ct);
            else if (c is { Kind: CandidateKind.FineTuned, Status: CandidateStatus.Tuning } && experiment.FineTuningJobId is not null)
                await SendAsync(send, StartFineTuningQueue, await FineTuningCommandAsync(experiment, CandidateName.Parse(c.Name).Target!, ct), ct);
            else
                continue;
            sent++;
        }
        if (experiment.Collection is not null && experiment.Candidates.Any(c => c.Kind is CandidateKind.Retrieval or CandidateKind.Knn && c.Status == CandidateStatus.Pending))
        {
            await SendAsync(send, IndexDatasetQueue, new IndexDataset { RequestId = NewId.NextGuid(), ExperimentId = experiment.Id, Collection = experiment.Collection, Dataset = Artifact(experiment.TrainArtifactJson) }, ct);
            sent++;
        }
        return sent;
    }

    private static async Task SendAsync<T>(ISendEndpointProvider send, Uri queue, T message, CancellationToken ct) where T : class =>
        await (await send.GetSendEndpoint(queue)).Send(message, ct);
}

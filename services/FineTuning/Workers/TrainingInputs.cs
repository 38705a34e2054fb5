using System.Text.Json;
using AspireTune.Contracts.Common;
using AspireTune.Engine.Training;
using AspireTune.FineTuning.Curation;
using AspireTune.FineTuning.Data;
using AspireTune.FineTuning.Jobs;
using AspireTune.FineTuning.Registry;
using AspireTune.FineTuning.Serving;
using AspireTune.ServiceDefaults.Artifacts;
using AspireTune.ServiceDefaults.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace AspireTune.FineTuning.Workers;

/// <summary>
/// What one training attempt of a job reads: the curated examples and validation split (the same on every attempt
/// and every worker), the base model on disk, and the newest checkpoint on disk to resume from.
/// </summary>
public sealed class TrainingInputs(IServiceScopeFactory scopes, IArtifactStore artifacts, DataRoot dataRoot, ModelRegistry registry, IOptions<FineTuningOptions> options)
{
    public async Task<TrainingRun> PrepareAsync(FineTuningJob job, RegisteredModel baseModel, CancellationToken ct)
    {
        var hyper = job.ResolvedHyperparameters!;
        var curated = JsonlDataset.Parse(await artifacts.ReadVerifiedAsync(new ArtifactRef { Id = job.CuratedArtifactId!, Sha256 = job.CuratedSha256!, Length = job.CuratedBytes }, ct));
        List<TrainingExample> train, validation;
        if (job.ValidationArtifactId is not null)
        {
            var file = JsonlDataset.Parse(await artifacts.ReadVerifiedAsync(new ArtifactRef { Id = job.ValidationArtifactId, Sha256 = job.ValidationSha256!, Length = job.ValidationBytes }, ct));
            (train, validation) = ([.. curated.Examples], [.. file.Examples]);
        }
        else
        {
            // Seeded shuffle: every attempt of the job (and every worker) holds out the same examples.
            var order = curated.Examples.ToArray();
            new Random(hyper.Seed).Shuffle(order);
            var holdout = JobValidator.HoldoutCount(order.Length, options.Value.ValidationHoldout);
            (validation, train) = (order[..holdout].ToList(), order[holdout..].ToList());
        }
        var dpo = job.Method == TrainingMethods.Dpo;
        var baseDirectory = await registry.MaterializeAsync(baseModel, ct);
        // The base model's own chat template when it has one: the fine-tuned model is served with the same.
        var template = ChatTemplate.For(baseDirectory);

        string? resume = null;
        await using (var scope = scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
            var checkpoints = await db.Checkpoints.AsNoTracking().Where(c => c.JobId == job.Id).OrderByDescending(c => c.Step).ToListAsync(ct);
            resume = checkpoints.Select(c => Path.Combine(dataRoot.Path, c.Path)).FirstOrDefault(Directory.Exists);
        }
        var jobFolder = Path.Combine(dataRoot.Folder("fine-tuning"), job.Id.ToString("N"));
        return new TrainingRun
        {
            JobId = job.Id,
            BaseModelDirectory = baseDirectory,
            OutputDirectory = Path.Combine(dataRoot.Folder("models"), "ft-" + job.Id.ToString("N")),
            CheckpointDirectory = Path.Combine(jobFolder, "checkpoints"),
            ResumeFrom = resume,
            Train = dpo ? [] : [.. train.Select(template.RenderTurns)],
            Validation = dpo ? [] : [.. validation.Select(template.RenderTurns)],
            Options = hyper.ToSftOptions(train.Count),
            Dpo = dpo ? hyper.ToDpoOptions(train.Count) : null,
            PreferenceTrain = dpo ? [.. train.Select(template.RenderPair)] : [],
            PreferenceValidation = dpo ? [.. validation.Select(template.RenderPair)] : [],
            TotalSteps = hyper.TotalSteps(train.Count),
        };
    }
}

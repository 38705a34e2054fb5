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
        var hyper = JsonSerializer.Deserialize<Hyperparameters>(job.ResolvedHyperparametersJson!)!;
        var curated = JsonlDataset.Parse(await artifacts.ReadVerifiedAsync(new ArtifactRef { Id = job.CuratedArtifactId!, Sha256 = job.CuratedSha256!, Length = job.CuratedBytes }, ct));
        var examples = curated.Examples.Select(ToPair).ToList();
        List<SftExample> train, validation;
        if (job.ValidationArtifactId is not null)
        {
            var file = JsonlDataset.Parse(await artifacts.ReadVerifiedAsync(new ArtifactRef { Id = job.ValidationArtifactId, Sha256 = job.ValidationSha256!, Length = job.ValidationBytes }, ct));
            (train, validation) = (examples, file.Examples.Select(ToPair).ToList());
        }
        else
        {
            // Seeded shuffle: every attempt of the job (and every worker) holds out the same examples.
            var order = examples.ToArray();
            new Random(hyper.Seed).Shuffle(order);
            var holdout = JobValidator.HoldoutCount(order.Length, options.Value.ValidationHoldout);
            (validation, train) = (order[..holdout].ToList(), order[holdout..].ToList());
        }

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
            BaseModelDirectory = await registry.MaterializeAsync(baseModel, ct),
            OutputDirectory = Path.Combine(dataRoot.Folder("models"), "ft-" + job.Id.ToString("N")),
            CheckpointDirectory = Path.Combine(jobFolder, "checkpoints"),
            ResumeFrom = resume,
            Train = train,
            Validation = validation,
            Options = hyper.ToSftOptions(train.Count),
            TotalSteps = hyper.TotalSteps(train.Count),
        };
    }

    private static SftExample ToPair(TrainingExample example)
    {
        var (prompt, completion) = ChatTemplate.Render(example);
        return new SftExample(prompt, completion);
    }
}

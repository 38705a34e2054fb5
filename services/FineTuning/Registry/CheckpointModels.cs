using System.Globalization;
using AspireTune.FineTuning.Data;
using AspireTune.FineTuning.Serving;
using AspireTune.FineTuning.Workers;
using AspireTune.ServiceDefaults;
using AspireTune.ServiceDefaults.Data;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.FineTuning.Registry;

/// <summary>A checkpoint that can be served, with what its model directory is made from.</summary>
public sealed record CheckpointModel(RegisteredModel Model, RegisteredModel Base, string CheckpointFolder, FineTuningJob Job);

/// <summary>
/// A job's kept training checkpoints served as models, named as the hosted API names them
/// (<c>&lt;fine-tuned model&gt;:ckpt-step-&lt;step&gt;</c>), while the job runs and after. A checkpoint folder holds only
/// the trainable weights; the first request for one writes its model directory (base model, checkpoint weights,
/// adapters folded in) inside that folder, so the model goes when the run prunes the checkpoint.
/// </summary>
public sealed class CheckpointModels(DataRoot dataRoot, ModelRegistry registry, IModelRuntime runtime, ILogger<CheckpointModels> logger)
{
    private const string Marker = ":ckpt-step-";
    private const string ModelFolder = "model";
    private readonly SemaphoreSlim _exportLock = new(1, 1);

    public static string ModelId(FineTuningJob job, int step) => JobOutcomes.FineTunedModelId(job) + Marker + step.ToString(CultureInfo.InvariantCulture);

    /// <summary>The model id of a checkpoint whose files the run still keeps; null once pruned.</summary>
    public string? ServedId(FineTuningJob job, JobCheckpoint checkpoint) =>
        Directory.Exists(Folder(checkpoint)) ? ModelId(job, checkpoint.Step) : null;

    /// <summary>Every kept checkpoint of every job, as models (for <c>GET /v1/models</c>).</summary>
    public async Task<List<RegisteredModel>> ListAsync(FineTuningDbContext db, CancellationToken ct)
    {
        var rows = await db.Checkpoints.AsNoTracking().Join(db.Jobs.AsNoTracking(), c => c.JobId, j => j.Id, (c, j) => new { c, j }).ToListAsync(ct);
        return rows.Where(r => Directory.Exists(Folder(r.c)))
            .Select(r => new RegisteredModel
            {
                Id = ModelId(r.j, r.c.Step), Source = ModelSource.Checkpoint, Path = registry.Relative(Path.Combine(Folder(r.c), ModelFolder)),
                BaseModel = r.j.BaseModel, JobId = r.j.Id, CreatedAt = r.c.CreatedAt,
            }).ToList();
    }

    /// <summary>
    /// The checkpoint an id names, or null when the id is not a checkpoint model's. Throws
    /// <see cref="CheckpointUnavailableException"/> when it names a checkpoint that cannot be served (pruned, or its
    /// base model deleted), saying which.
    /// </summary>
    public async Task<CheckpointModel?> FindAsync(FineTuningDbContext db, string id, CancellationToken ct)
    {
        var at = id.LastIndexOf(Marker, StringComparison.Ordinal);
        if (at < 0 || !int.TryParse(id.AsSpan(at + Marker.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var step))
            return null;
        var prefix = id[..at];
        if (!CompactId.TryDecode(prefix.AsSpan(prefix.LastIndexOf(':') + 1), out var jobId))
            return null;
        var job = await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == jobId, ct);
        if (job is null || JobOutcomes.FineTunedModelId(job) != prefix)
            return null;
        var checkpoint = await db.Checkpoints.AsNoTracking().FirstOrDefaultAsync(c => c.JobId == jobId && c.Step == step, ct);
        if (checkpoint is null)
            return null;
        var folder = Folder(checkpoint);
        if (!Directory.Exists(folder))
            throw new CheckpointUnavailableException(
                $"The checkpoint at step {step} of job {Apis.JobIds.Format(jobId)} is no longer kept: a run keeps only its latest checkpoints (GET /v1/fine_tuning/jobs/{Apis.JobIds.Format(jobId)}/checkpoints lists them).");
        var baseModel = await db.Models.AsNoTracking().FirstOrDefaultAsync(m => m.Id == job.BaseModel, ct)
            ?? throw new CheckpointUnavailableException($"The checkpoint at step {step} cannot be served: its base model '{job.BaseModel}' has been deleted.");
        var model = new RegisteredModel
        {
            Id = id,
            Source = ModelSource.Checkpoint,
            Path = registry.Relative(Path.Combine(folder, ModelFolder)),
            Architecture = baseModel.Architecture,
            Parameters = baseModel.Parameters,
            HasTokenizer = baseModel.HasTokenizer,
            BaseModel = baseModel.Id,
            JobId = job.Id,
            Hyperparameters = job.ResolvedHyperparameters,
            CreatedAt = checkpoint.CreatedAt,
        };
        return new CheckpointModel(model, baseModel, folder, job);
    }

    /// <summary>Writes the checkpoint's model directory unless it is there (staged and renamed: never half-written).</summary>
    public async Task ExportAsync(CheckpointModel checkpoint, CancellationToken ct)
    {
        var directory = registry.Directory(checkpoint.Model);
        if (File.Exists(Path.Combine(directory, "config.json")))
            return;
        var baseDirectory = await registry.MaterializeAsync(checkpoint.Base, ct);
        await _exportLock.WaitAsync(ct);
        try
        {
            if (File.Exists(Path.Combine(directory, "config.json")))
                return;
            var staging = directory + ".exporting-" + Guid.NewGuid().ToString("N");
            try
            {
                var started = DateTime.UtcNow;
                await Task.Run(() => runtime.ExportCheckpoint(baseDirectory, checkpoint.CheckpointFolder, checkpoint.Job.ResolvedHyperparameters!, staging), ct);
                Directory.Move(staging, directory);
                logger.LogInformation("Wrote checkpoint model {Model} in {Seconds:0.0} s", checkpoint.Model.Id, (DateTime.UtcNow - started).TotalSeconds);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException && !Directory.Exists(checkpoint.CheckpointFolder))
            {
                throw new CheckpointUnavailableException($"The checkpoint behind '{checkpoint.Model.Id}' was pruned by its run while its model was being written.");
            }
            finally
            {
                if (Directory.Exists(staging))
                    Directory.Delete(staging, recursive: true);
            }
        }
        finally
        {
            _exportLock.Release();
        }
    }

    private string Folder(JobCheckpoint checkpoint) => Path.GetFullPath(Path.Combine(dataRoot.Path, checkpoint.Path));
}

/// <summary>A checkpoint model that exists by name but cannot be served; the message says why.</summary>
public sealed class CheckpointUnavailableException(string message) : Exception(message);

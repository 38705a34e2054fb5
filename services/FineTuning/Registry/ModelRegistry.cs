using AspireTune.Engine.Models;
using AspireTune.FineTuning.Data;
using AspireTune.FineTuning.Jobs;
using AspireTune.FineTuning.Serving;
using AspireTune.ServiceDefaults.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace AspireTune.FineTuning.Registry;

/// <summary>
/// Where registered models live on disk, and the built-in base model: its row exists from the first start,
/// its files are written (random initialisation) the first time something needs them.
/// </summary>
public sealed class ModelRegistry(DataRoot dataRoot, IModelRuntime runtime, IOptions<FineTuningOptions> options, IOptions<BuiltInModelOptions> builtIn)
{
    private readonly SemaphoreSlim _createLock = new(1, 1);

    public string BuiltInId => options.Value.BuiltInModel;

    /// <summary>Absolute directory of a model.</summary>
    public string Directory(RegisteredModel model) => Path.GetFullPath(Path.Combine(dataRoot.Path, model.Path));

    /// <summary>A path relative to the data folder, as stored in the registry.</summary>
    public string Relative(string absolute) => Path.GetRelativePath(dataRoot.Path, absolute);

    /// <summary>
    /// The model's context in tokens, as its config.json says (<c>max_position_embeddings</c> / <c>n_positions</c>), read
    /// from <paramref name="directoryOf"/>'s folder (a checkpoint model's base: the checkpoint's own folder is written on
    /// first use). The built-in model's is its configured one until its files exist; null when the files cannot be read.
    /// </summary>
    public int? ContextLength(RegisteredModel directoryOf)
    {
        var config = Path.Combine(Directory(directoryOf), "config.json");
        if (!File.Exists(config))
            return directoryOf.Source == ModelSource.BuiltIn ? builtIn.Value.Context : null;
        try
        {
            return ModelConfig.Load(config).MaxPositions;
        }
        catch (ModelFormatException)
        {
            return null;
        }
    }

    public async Task EnsureBuiltInRegisteredAsync(FineTuningDbContext db, CancellationToken ct)
    {
        if (await db.Models.AnyAsync(m => m.Id == BuiltInId, ct))
            return;
        db.Models.Add(new RegisteredModel
        {
            Id = BuiltInId,
            Source = ModelSource.BuiltIn,
            Path = Path.Combine("models", BuiltInId),
            Architecture = "gpt2",
            HasTokenizer = true,
        });
        // Another replica may have registered it first: then the row we wanted exists.
        await db.SaveUnlessTakenAsync(t => db.Models.AsNoTracking().AnyAsync(m => m.Id == BuiltInId, t), ct);
    }

    /// <summary>The model's directory, creating the built-in model's files on first use.</summary>
    public async Task<string> MaterializeAsync(RegisteredModel model, CancellationToken ct)
    {
        var directory = Directory(model);
        if (model.Source != ModelSource.BuiltIn || File.Exists(Path.Combine(directory, "config.json")))
        {
            // Loading, training from and exporting a model read its files: none may be a link out of the data folder.
            if (System.IO.Directory.Exists(directory))
                dataRoot.ConfinedFiles(directory);
            return directory;
        }
        await _createLock.WaitAsync(ct);
        try
        {
            if (File.Exists(Path.Combine(directory, "config.json")))
                return directory;
            // Written beside and renamed, so a process killed half-way never leaves a partial model behind.
            var staging = directory + ".creating-" + Guid.NewGuid().ToString("N");
            System.IO.Directory.CreateDirectory(staging);
            runtime.CreateBuiltIn(staging);
            System.IO.Directory.CreateDirectory(Path.GetDirectoryName(directory)!);
            try
            {
                System.IO.Directory.Move(staging, directory);
            }
            catch (IOException) when (File.Exists(Path.Combine(directory, "config.json")))
            {
                System.IO.Directory.Delete(staging, recursive: true); // another process created it meanwhile
            }
            return directory;
        }
        finally
        {
            _createLock.Release();
        }
    }
}

/// <summary>Registers the built-in base model at start, so <c>/v1/models</c> and job creation know it at once.</summary>
internal sealed class BuiltInModelSeeder(IServiceProvider services) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await using var scope = services.CreateAsyncScope();
        await scope.ServiceProvider.GetRequiredService<ModelRegistry>()
            .EnsureBuiltInRegisteredAsync(scope.ServiceProvider.GetRequiredService<FineTuningDbContext>(), cancellationToken);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

using System.Text.Json;
using AspireTune.Contracts.Common;
using AspireTune.Engine.Training;
using AspireTune.FineTuning.Curation;
using AspireTune.FineTuning.Data;
using AspireTune.FineTuning.Registry;
using AspireTune.FineTuning.Serving;
using AspireTune.ServiceDefaults.Artifacts;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace AspireTune.FineTuning.Jobs;

/// <summary>
/// The validating_files step: reads the job's files from the artifact store (verifying their SHA-256),
/// runs the quality gate, stores the report and the curated set, resolves "auto" hyperparameters, and
/// moves the job to queued (or leaves it paused, when it was paused meanwhile), or to failed with the report.
/// </summary>
public sealed class JobValidator(IArtifactStore artifacts, ModelRegistry registry, IModelRuntime runtime, IOptions<CurationOptions> curation, IOptions<FineTuningOptions> options)
{
    public sealed record Outcome(bool Passed, string? Code, string? Message);

    public async Task<Outcome> ValidateAsync(FineTuningDbContext db, FineTuningJob job, CancellationToken ct)
    {
        var model = await db.Models.AsNoTracking().FirstOrDefaultAsync(m => m.Id == job.BaseModel, ct);
        if (model is null)
            return Fail(db, job, "model_not_found", $"The base model '{job.BaseModel}' is not registered.");

        var training = await ReadAsync(job.TrainingArtifactId, job.TrainingSha256, job.TrainingBytes, ct);
        var test = job.TestArtifactId is null ? null : await ReadAsync(job.TestArtifactId, job.TestSha256!, job.TestBytes, ct);
        var validation = job.ValidationArtifactId is null ? null : await ReadAsync(job.ValidationArtifactId, job.ValidationSha256!, job.ValidationBytes, ct);

        // A job from another service's command has no uploaded files whose format was checked at submission.
        var wanted = job.Method == TrainingMethods.Dpo;
        foreach (var (name, file) in new[] { ("training", training), ("validation", validation), ("test", test) })
            if (file is { IsValid: true } && (file.Format == JsonlDataset.PreferenceFormat) != wanted)
                return Fail(db, job, "invalid_training_file", wanted
                    ? $"The {name} file holds {file.Format} examples; a dpo job needs preference pairs (input, preferred_output, non_preferred_output)."
                    : $"The {name} file holds preference pairs; they train a dpo job, a supervised job needs chat or prompt/completion examples.");

        var directory = await registry.MaterializeAsync(model, ct);
        var description = runtime.Describe(directory);
        if (!description.HasTokenizer)
            return Fail(db, job, "model_without_tokenizer", $"The base model '{job.BaseModel}' has no tokenizer files, so text training data cannot be encoded for it.");
        var count = runtime.TokenCounter(directory);
        ChatTemplate template;
        try
        {
            template = ChatTemplate.For(directory);
            foreach (var example in training.Examples.Take(1))
                template.RenderTurns(example); // a template that cannot render the data fails here, not in training
        }
        catch (Serving.Templates.TemplateException e)
        {
            return TemplateFailure(e);
        }
        var requested = job.RequestedHyperparameters;
        // max_seq_len is needed before the gate (truncation); it depends only on the request and the model.
        var maxSeqLen = HyperparameterSpec.Resolve(requested, 1, description.Parameters, description.MaxPositions, job.Method).MaxSeqLen;

        Outcome TemplateFailure(Serving.Templates.TemplateException e) =>
            Fail(db, job, "invalid_chat_template", $"The base model's chat template cannot render the training data: {e.Message}");

        ExampleTokens Tokens(TrainingExample e)
        {
            if (e.NonPreferred is { } other)
            {
                var (prompt, completion) = template.Render(e);
                // A pair's longer answer decides whether its sequences fit.
                return count(prompt) + Math.Max(count(completion), count(other)) + 1; // + end-of-text
            }
            // The segments training encodes one by one, and what truncating them as training does costs in trained tokens.
            List<(int Count, bool Trained)> segments = [.. template.RenderTurns(e).Segments.Select(s => (count(s.Text), s.Trained))];
            var trained = segments.Where(s => s.Trained).Sum(s => s.Count) + (segments[^1].Trained ? 1 : 0);
            var kept = SftData.Layout(segments, bos: false, maxSeqLen).Trained.Count(t => t);
            return new ExampleTokens(segments.Sum(s => s.Count) + 1, trained - kept); // + end-of-text
        }

        CurationResult result;
        try
        {
            result = QualityGate.Run(training, test, Tokens, maxSeqLen, curation.Value);
        }
        catch (Serving.Templates.TemplateException e)
        {
            return TemplateFailure(e); // a later example the template cannot split into turns
        }
        var failures = result.Report.Failures.ToList();
        if (validation is not null && !validation.IsValid)
            failures.Add($"Validation file: {validation.Summary()}");
        var report = failures.Count == result.Report.Failures.Count ? result.Report : result.Report with { Passed = false, Failures = failures };
        job.QualityReport = report;
        if (!report.Passed)
            return Fail(db, job, "invalid_training_file", "The training data failed the quality gate: " + string.Join(" ", report.Failures));

        var curated = await artifacts.PutAsync(new MemoryStream(JsonlDataset.Write(result.Kept)), "fine-tuning", "curated.jsonl", "application/jsonl", ct);
        job.CuratedArtifactId = curated.Id;
        job.CuratedSha256 = curated.Sha256;
        job.CuratedBytes = curated.Length;
        var trainCount = validation is null ? result.Kept.Count - HoldoutCount(result.Kept.Count, options.Value.ValidationHoldout) : result.Kept.Count;
        var resolved = HyperparameterSpec.Resolve(requested, trainCount, description.Parameters, description.MaxPositions, job.Method);
        job.ResolvedHyperparameters = resolved;
        job.TotalSteps = resolved.TotalSteps(trainCount);
        // A job paused while its files were validated stays paused; its resume queues it.
        var paused = job.Status == JobStatus.Paused;
        job.Status = paused ? JobStatus.Paused : JobStatus.Queued;
        JobEvents.Add(db, job.Id, "info", "validated",
            $"Files validated: {report.ExamplesKept} of {report.ExamplesRead} examples kept ({report.Duplicates.ExactRemoved} exact and {report.Duplicates.NearRemoved} near duplicates removed" +
            (report.Leakage is { } l ? $", {l.OverlappingTrainingExamples} overlapping the test set" : "") + ").");
        foreach (var warning in report.Warnings)
            JobEvents.Add(db, job.Id, "warn", "quality_warning", warning);
        if (paused)
            JobEvents.Add(db, job.Id, "info", "validated_paused", $"Job stays paused: {job.TotalSteps} steps planned; resuming queues it.");
        else
            JobEvents.Add(db, job.Id, "info", "queued", $"Job queued: {job.TotalSteps} steps planned.");
        return new Outcome(true, null, null);
    }

    /// <summary>Validation examples held out of a curated set of <paramref name="kept"/> examples when no validation file is given.</summary>
    public static int HoldoutCount(int kept, double share) => kept < 2 ? 0 : Math.Clamp((int)Math.Round(kept * share), 1, Math.Min(500, kept / 2));

    private async Task<JsonlParseResult> ReadAsync(string id, string sha, long length, CancellationToken ct)
    {
        var bytes = await artifacts.ReadVerifiedAsync(new ArtifactRef { Id = id, Sha256 = sha, Length = length }, ct);
        return JsonlDataset.Parse(bytes);
    }

    /// <summary>Fails the job in validating_files without reading its files.</summary>
    public Outcome Reject(FineTuningDbContext db, FineTuningJob job, string code, string message) => Fail(db, job, code, message);

    private static Outcome Fail(FineTuningDbContext db, FineTuningJob job, string code, string message)
    {
        job.Status = JobStatus.Failed;
        job.ErrorCode = code;
        job.ErrorMessage = message;
        job.FinishedAt = DateTimeOffset.UtcNow;
        JobEvents.Add(db, job.Id, "error", "failed", message);
        return new Outcome(false, code, message);
    }
}

public static class JobEvents
{
    public static void Add(FineTuningDbContext db, Guid jobId, string level, string type, string message, object? data = null) =>
        db.JobEvents.Add(new JobEvent
        {
            JobId = jobId,
            Level = level,
            Type = type,
            Message = message,
            Data = data is null ? null : JsonSerializer.SerializeToElement(data),
        });
}

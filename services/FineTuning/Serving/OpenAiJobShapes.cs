using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using AspireTune.FineTuning.Apis;
using AspireTune.FineTuning.Data;
using AspireTune.FineTuning.Jobs;

namespace AspireTune.FineTuning.Serving;

/// <summary>The OpenAI <c>fine_tuning.job</c> object, field for field.</summary>
public sealed record OpenAiJob
{
    [JsonPropertyName("id")] public required string Id { get; init; }
    [JsonPropertyName("object")] public string Object => "fine_tuning.job";
    [JsonPropertyName("created_at")] public required long CreatedAt { get; init; }
    [JsonPropertyName("error")] public OpenAiJobError? Error { get; init; }
    [JsonPropertyName("estimated_finish")] public long? EstimatedFinish { get; init; }
    [JsonPropertyName("fine_tuned_model")] public string? FineTunedModel { get; init; }
    [JsonPropertyName("finished_at")] public long? FinishedAt { get; init; }
    [JsonPropertyName("hyperparameters")] public required JsonObject Hyperparameters { get; init; }
    [JsonPropertyName("integrations")] public IReadOnlyList<object> Integrations => [];
    [JsonPropertyName("metadata")] public IReadOnlyDictionary<string, string>? Metadata { get; init; }
    [JsonPropertyName("method")] public required JsonObject Method { get; init; }
    [JsonPropertyName("model")] public required string Model { get; init; }
    [JsonPropertyName("organization_id")] public required string OrganizationId { get; init; }
    [JsonPropertyName("result_files")] public required IReadOnlyList<string> ResultFiles { get; init; }
    [JsonPropertyName("seed")] public required long Seed { get; init; }
    [JsonPropertyName("status")] public required string Status { get; init; }
    [JsonPropertyName("trained_tokens")] public long? TrainedTokens { get; init; }
    [JsonPropertyName("training_file")] public required string TrainingFile { get; init; }
    [JsonPropertyName("validation_file")] public string? ValidationFile { get; init; }
    [JsonPropertyName("user_provided_suffix")] public string? Suffix { get; init; }
}

/// <summary>Why a job failed: <c>code</c>, <c>message</c> and the parameter at fault (usually training_file).</summary>
public sealed record OpenAiJobError(
    [property: JsonPropertyName("code")] string Code,
    [property: JsonPropertyName("message")] string Message,
    [property: JsonPropertyName("param")] string? Param);

public sealed record OpenAiJobEvent
{
    [JsonPropertyName("id")] public required string Id { get; init; }
    [JsonPropertyName("object")] public string Object => "fine_tuning.job.event";
    [JsonPropertyName("created_at")] public required long CreatedAt { get; init; }
    [JsonPropertyName("level")] public required string Level { get; init; }
    [JsonPropertyName("message")] public required string Message { get; init; }
    /// <summary><c>metrics</c> for a step's losses (in <see cref="Data"/>), <c>message</c> otherwise.</summary>
    [JsonPropertyName("type")] public required string Type { get; init; }
    [JsonPropertyName("data")] public JsonElement? Data { get; init; }
}

public sealed record OpenAiCheckpoint
{
    [JsonPropertyName("id")] public required string Id { get; init; }
    [JsonPropertyName("object")] public string Object => "fine_tuning.job.checkpoint";
    [JsonPropertyName("created_at")] public required long CreatedAt { get; init; }
    /// <summary>
    /// The checkpoint served as a model (<c>ft:...:ckpt-step-N</c>, for chat and completions) while the run keeps its
    /// files; null once the run has pruned it.
    /// </summary>
    [JsonPropertyName("fine_tuned_model_checkpoint")] public required string? FineTunedModelCheckpoint { get; init; }
    [JsonPropertyName("fine_tuning_job_id")] public required string JobId { get; init; }
    [JsonPropertyName("step_number")] public required int StepNumber { get; init; }
    [JsonPropertyName("metrics")] public required OpenAiCheckpointMetrics Metrics { get; init; }
}

/// <summary>Checkpoint metrics; validation runs over the whole validation set, so valid and full_valid agree.</summary>
public sealed record OpenAiCheckpointMetrics(
    [property: JsonPropertyName("step")] int Step,
    [property: JsonPropertyName("train_loss")] double TrainLoss,
    [property: JsonPropertyName("train_mean_token_accuracy")] double? TrainMeanTokenAccuracy,
    [property: JsonPropertyName("valid_loss")] double? ValidLoss,
    [property: JsonPropertyName("valid_mean_token_accuracy")] double? ValidMeanTokenAccuracy,
    [property: JsonPropertyName("full_valid_loss")] double? FullValidLoss,
    [property: JsonPropertyName("full_valid_mean_token_accuracy")] double? FullValidMeanTokenAccuracy);

/// <summary>Maps the jobs table to the OpenAI shapes; the same rows <c>/api/fine-tuning/jobs</c> reads.</summary>
public static class OpenAiJobMapper
{
    /// <summary>The hyperparameters the hosted API names, in the order it lists them.</summary>
    public static readonly string[] HostedNames = ["batch_size", "learning_rate_multiplier", "n_epochs"];

    /// <summary>A dpo job's hosted hyperparameters.</summary>
    public static readonly string[] HostedDpoNames = ["batch_size", "beta", "learning_rate_multiplier", "n_epochs"];

    /// <summary>The job; <paramref name="baseParameters"/> (of the base model) states its learning rate as a multiplier of the automatic one.</summary>
    public static OpenAiJob From(FineTuningJob j, long baseParameters, string organization, DateTimeOffset now)
    {
        var hyper = Hyperparameters(j, baseParameters);
        var hostedHyper = new JsonObject();
        foreach (var name in j.Method == TrainingMethods.Dpo ? HostedDpoNames : HostedNames)
            hostedHyper[name] = hyper[name]?.DeepClone();
        var requested = j.RequestedHyperparameters;
        var seed = hyper["seed"] is JsonValue s && s.TryGetValue<long>(out var resolvedSeed) ? resolvedSeed
            : requested.TryGetValue("seed", out var text) && long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var asked) ? asked : 42;
        return new OpenAiJob
        {
            Id = JobIds.Format(j.Id),
            CreatedAt = j.CreatedAt.ToUnixTimeSeconds(),
            Error = j.ErrorCode is null ? null : new OpenAiJobError(j.ErrorCode, j.ErrorMessage ?? "", ErrorParam(j.ErrorCode)),
            EstimatedFinish = EstimatedFinish(j, now),
            FineTunedModel = j.FineTunedModel,
            FinishedAt = j.FinishedAt?.ToUnixTimeSeconds(),
            Hyperparameters = hostedHyper,
            Metadata = j.Metadata,
            Method = new JsonObject { ["type"] = j.Method, [j.Method] = new JsonObject { ["hyperparameters"] = hyper } },
            Model = j.BaseModel,
            OrganizationId = organization,
            ResultFiles = j.Status == JobStatus.Succeeded ? [OpenAiFilesApi.ResultFileId(j)] : [],
            Seed = seed,
            Status = j.Status,
            TrainedTokens = j.Status == JobStatus.Succeeded ? j.TrainedTokens : null,
            TrainingFile = j.TrainingFileId ?? j.TrainingArtifactId,
            ValidationFile = j.ValidationFileId ?? j.ValidationArtifactId,
            Suffix = j.Suffix,
        };
    }

    /// <summary>
    /// As requested ("auto" kept) until the files are validated, then the values training uses. The learning rate
    /// appears as the hosted <c>learning_rate_multiplier</c> (of the automatic rate for the base model) beside the
    /// absolute <c>learning_rate</c> and AspireTune's own hyperparameters.
    /// </summary>
    private static JsonObject Hyperparameters(FineTuningJob j, long baseParameters)
    {
        if (j.ResolvedHyperparameters is null)
        {
            var requested = j.RequestedHyperparameters;
            var asked = new JsonObject();
            foreach (var name in (j.Method == TrainingMethods.Dpo ? HostedDpoNames : HostedNames).Concat(requested.Keys).Distinct())
                asked[name] = requested.TryGetValue(name, out var v) && double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var number)
                    ? (number == Math.Floor(number) && Math.Abs(number) < int.MaxValue ? JsonValue.Create((int)number) : JsonValue.Create(number))
                    : JsonValue.Create("auto");
            return asked;
        }
        var resolved = JsonSerializer.SerializeToNode(j.ResolvedHyperparameters)!.AsObject();
        var lr = resolved["learning_rate"]?.GetValue<double>() ?? 0;
        var lora = resolved["lora_rank"]?.GetValue<int>() ?? 0;
        var result = new JsonObject
        {
            ["batch_size"] = resolved["batch_size"]?.DeepClone(),
            ["learning_rate_multiplier"] = Math.Round(lr / HyperparameterSpec.AutoLearningRate(baseParameters, lora), 6),
            ["n_epochs"] = resolved["n_epochs"]?.DeepClone(),
        };
        foreach (var (name, value) in resolved)
            if (!result.ContainsKey(name))
                result[name] = value?.DeepClone();
        return result;
    }

    private static string? ErrorParam(string code) => code switch
    {
        "invalid_training_file" or "validation_error" => "training_file",
        "model_not_found" or "model_without_tokenizer" => "model",
        _ => null,
    };

    /// <summary>
    /// While running: now plus the time the remaining steps take at the rate so far, rounded up and at least a second
    /// ahead (the .NET SDK waits until this instant and fails on a wait into the past); null otherwise.
    /// </summary>
    private static long? EstimatedFinish(FineTuningJob j, DateTimeOffset now)
    {
        if (j.Status != JobStatus.Running || j.StartedAt is not { } started || j.Step <= 0)
            return null;
        var remaining = Math.Max(0, j.TotalSteps - j.Step) * (now - started).TotalSeconds / j.Step;
        return (long)Math.Ceiling(now.ToUnixTimeMilliseconds() / 1000.0 + Math.Max(1, remaining));
    }

    public static OpenAiJobEvent Event(JobEvent e)
    {
        var data = e.Data;
        return new OpenAiJobEvent
        {
            Id = $"ftevent-{e.Id}",
            CreatedAt = e.CreatedAt.ToUnixTimeSeconds(),
            Level = e.Level,
            Message = e.Message,
            Type = e.Type == "metrics" ? "metrics" : "message",
            Data = data,
        };
    }

    public static OpenAiCheckpoint Checkpoint(JobCheckpoint c, string? servedAs) => new()
    {
        Id = c.Id,
        FineTunedModelCheckpoint = servedAs,
        CreatedAt = c.CreatedAt.ToUnixTimeSeconds(),
        JobId = JobIds.Format(c.JobId),
        StepNumber = c.Step,
        Metrics = new OpenAiCheckpointMetrics(c.Step, c.TrainLoss, null, c.ValidLoss, c.ValidMeanTokenAccuracy, c.ValidLoss, c.ValidMeanTokenAccuracy),
    };
}

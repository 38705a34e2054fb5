using System.ComponentModel.DataAnnotations;

namespace AspireTune.FineTuning.Jobs;

/// <summary>Settings of the FineTuning service (section <c>FineTuning</c>).</summary>
public sealed class FineTuningOptions
{
    public const string SectionName = "FineTuning";

    /// <summary>Largest accepted upload, in bytes. Default 104,857,600 (100 MiB).</summary>
    [Range(1, long.MaxValue)]
    public long MaxUploadBytes { get; set; } = 100L * 1024 * 1024;

    /// <summary>Whether this process trains (runs the worker loop). Default true; false for an API-only replica.</summary>
    public bool WorkerEnabled { get; set; } = true;

    /// <summary>How long a worker's claim on a job lasts without a heartbeat, in seconds. Default 30.</summary>
    [Range(2, 3600)]
    public int LeaseSeconds { get; set; } = 30;

    /// <summary>How often a running worker renews its lease and checks for cancellation, in seconds. Default 5.</summary>
    [Range(1, 600)]
    public int HeartbeatSeconds { get; set; } = 5;

    /// <summary>How often an idle worker looks for a queued or abandoned job, in milliseconds. Default 2000.</summary>
    [Range(50, 600_000)]
    public int PollIntervalMs { get; set; } = 2000;

    /// <summary>Least time between two <c>TrainingProgressed</c> events of a job, in milliseconds (evaluations always publish). Default 1000.</summary>
    [Range(0, 600_000)]
    public int ProgressIntervalMs { get; set; } = 1000;

    /// <summary>Share of the curated training set held out for validation when no validation file is given. Default 0.1.</summary>
    [Range(0.01, 0.5)]
    public double ValidationHoldout { get; set; } = 0.1;

    /// <summary>Name of the model created on first use when no model has been imported (a small random-initialised GPT-2). Default <c>aspiretune-tiny</c>.</summary>
    [Required, RegularExpression(ModelNames.Pattern)]
    public string BuiltInModel { get; set; } = "aspiretune-tiny";

    /// <summary>Base URL other services use to reach this host's <c>/v1</c> API (reported in <c>TrainingCompleted</c>); default: the first address the host listens on.</summary>
    public string? PublicBaseUrl { get; set; }

    /// <summary>Validation examples answered by greedy generation at each evaluation for the exact-match metric (0 turns it off). Default 32.</summary>
    [Range(0, 100_000)]
    public int ExactMatchExamples { get; set; } = 32;

    /// <summary>The <c>organization_id</c> that <c>/v1/fine_tuning/jobs</c> reports, as the hosted API does. Default <c>org-aspiretune</c>.</summary>
    [Required, RegularExpression("^[A-Za-z0-9_-]{1,64}$")]
    public string OrganizationId { get; set; } = "org-aspiretune";

    /// <summary>Models kept loaded for serving at once (least recently used is unloaded). Default 4.</summary>
    [Range(1, 64)]
    public int MaxLoadedModels { get; set; } = 4;

    /// <summary>
    /// Positions of the key/value cache each served model shares among the requests it decodes together; a request
    /// reserves its prompt plus max_tokens and waits while they do not fit. Default 16,384 (about 1.2 GB for
    /// GPT-2 small in fp32, 0.5 GB for a Llama-3.2-1B shape in bf16).
    /// </summary>
    [Range(256, 16_777_216)]
    public int ServingKvCacheTokens { get; set; } = 16_384;

    /// <summary>Most requests one model decodes in the same step (continuous batching). Default 64.</summary>
    [Range(1, 1024)]
    public int ServingMaxBatch { get; set; } = 64;
}

public static class ModelNames
{
    /// <summary>Model ids: letters, digits and <c>. _ - :</c>, starting with a letter or digit, at most 128 characters.</summary>
    public const string Pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$";

    /// <summary>Prefix of the ids of models fine-tuned here (<c>ft:base:suffix:job</c>); never given to an imported model.</summary>
    public const string FineTunedPrefix = "ft:";

    public static bool IsValid(string? name) => name is not null && System.Text.RegularExpressions.Regex.IsMatch(name, Pattern);
}

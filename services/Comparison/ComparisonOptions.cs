using System.ComponentModel.DataAnnotations;

namespace AspireTune.Comparison;

/// <summary>How the Comparison service runs experiments (section <c>Comparison</c>).</summary>
public sealed class ComparisonOptions
{
    public const string SectionName = "Comparison";

    /// <summary>Base URL of the Evaluation service. Default <c>http://evaluation</c> (service discovery).</summary>
    [Required] public string EvaluationBaseUrl { get; set; } = "http://evaluation";

    /// <summary>Base URL of the Retrieval service. Default <c>http://retrieval</c> (service discovery).</summary>
    [Required] public string RetrievalBaseUrl { get; set; } = "http://retrieval";

    /// <summary>Base URL of the Fine-tuning service (its <c>/v1</c> serves the base model). Default <c>http://finetuning</c>.</summary>
    [Required] public string FineTuningBaseUrl { get; set; } = "http://finetuning";

    /// <summary>Base model fine-tuned, and prompted when no hosted endpoint is named. Default <c>aspiretune-tiny</c>.</summary>
    [Required] public string DefaultBaseModel { get; set; } = "aspiretune-tiny";

    /// <summary>Largest dataset accepted by the API, in bytes. Default 50 MB.</summary>
    [Range(1, long.MaxValue)] public long MaxDatasetBytes { get; set; } = 50L * 1024 * 1024;

    /// <summary>Share of the training split set aside for validation (prompt selection, early stopping). Default 0.15.</summary>
    [Range(0.0, 0.5)] public double ValidationFraction { get; set; } = 0.15;

    /// <summary>Near-duplicate threshold (Jaccard of word 3-shingles). Default 0.9.</summary>
    [Range(0.5, 1.0)] public double NearDuplicateThreshold { get; set; } = 0.9;

    /// <summary>Neighbours voting in the kNN baseline. Default 5.</summary>
    [Range(1, 100)] public int KnnNeighbors { get; set; } = 5;

    /// <summary>Examples retrieved into the dynamic prompt. Default 4.</summary>
    [Range(1, 50)] public int RetrievalExamples { get; set; } = 4;

    /// <summary>Default non-inferiority margin when the request gives none: accuracy points as a fraction. Default 0.02 (2 points).</summary>
    [Range(0.0, 0.5)] public double NonInferiorityMargin { get; set; } = 0.02;

    /// <summary>Price of an hour of the training job's machine (one GPU), USD. Default 2.50.</summary>
    [Range(0.0, 1000.0)] public double GpuHourPrice { get; set; } = 2.5;

    /// <summary>Hosting a self-served model (fine-tuned, or the base model served here) around the clock, USD per hour. Default 0.50.</summary>
    [Range(0.0, 1000.0)] public double SelfServedHourPrice { get; set; } = 0.5;

    /// <summary>Hosting the kNN baseline's index, USD per hour. Default 0.05.</summary>
    [Range(0.0, 1000.0)] public double KnnHourPrice { get; set; } = 0.05;

    /// <summary>Days the one-off training cost is spread over in the total cost of ownership. Default 90.</summary>
    [Range(1.0, 3650.0)] public double CostHorizonDays { get; set; } = 90;

    /// <summary>Generation experiments: Evaluation endpoint id of the judge model that also scores every answer 1-10 when the request names none. Default none.</summary>
    [MaxLength(128)] public string? JudgeEndpoint { get; set; }

    /// <summary>Generation experiments: most output tokens per answer (the budget is sized to the longest reference, up to this). Default 512.</summary>
    [Range(16, 32768)] public int GenerationMaxTokens { get; set; } = 512;

    /// <summary>Hyperparameters for the fine-tuning candidate, as the jobs API takes them (e.g. <c>n_epochs=4</c>).</summary>
    public Dictionary<string, string> FineTuningHyperparameters { get; set; } = new();
}

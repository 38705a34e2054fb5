using System.Globalization;
using System.Text.Json.Serialization;
using AspireTune.Engine.Models;
using AspireTune.Engine.Training;
using AspireTune.FineTuning.Data;

namespace AspireTune.FineTuning.Jobs;

/// <summary>
/// Training hyperparameters with the values training used. Every one may be requested as "auto" (or left
/// out); <see cref="HyperparameterSpec.All"/> lists names, ranges and defaults, and docs/finetuning.md repeats them.
/// </summary>
public sealed record Hyperparameters
{
    [JsonPropertyName("n_epochs")] public int Epochs { get; init; }
    [JsonPropertyName("batch_size")] public int BatchSize { get; init; }
    [JsonPropertyName("learning_rate")] public double LearningRate { get; init; }
    [JsonPropertyName("warmup_ratio")] public double WarmupRatio { get; init; }
    [JsonPropertyName("lr_scheduler")] public string Scheduler { get; init; } = "cosine";
    [JsonPropertyName("weight_decay")] public double WeightDecay { get; init; }
    [JsonPropertyName("dropout")] public double Dropout { get; init; }
    [JsonPropertyName("early_stopping_patience")] public int EarlyStoppingPatience { get; init; }
    [JsonPropertyName("eval_interval")] public int EvalInterval { get; init; }
    [JsonPropertyName("checkpoint_interval")] public int CheckpointInterval { get; init; }
    [JsonPropertyName("lora_rank")] public int LoraRank { get; init; }
    [JsonPropertyName("lora_alpha")] public double LoraAlpha { get; init; }
    [JsonPropertyName("max_seq_len")] public int MaxSeqLen { get; init; }
    [JsonPropertyName("seed")] public int Seed { get; init; }

    /// <summary>DPO's beta; null for supervised jobs.</summary>
    [JsonPropertyName("beta"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public double? Beta { get; init; }

    /// <summary>Optimizer steps the run plans for this many examples.</summary>
    public int TotalSteps(int examples) => Epochs * StepsPerEpoch(examples);

    public int StepsPerEpoch(int examples) => Math.Max(1, (examples + BatchSize - 1) / BatchSize);

    /// <summary>The engine's options for a run on <paramref name="examples"/> training examples: the one place the job's names meet the engine's.</summary>
    public SftOptions ToSftOptions(int examples) => new()
    {
        Epochs = Epochs,
        BatchSize = BatchSize,
        LearningRate = LearningRate,
        WarmupSteps = (int)Math.Round(WarmupRatio * TotalSteps(examples)),
        Schedule = Scheduler switch { "linear" => LearningRateSchedule.Linear, "constant" => LearningRateSchedule.Constant, _ => LearningRateSchedule.Cosine },
        WeightDecay = WeightDecay,
        Dropout = Dropout,
        EvalEverySteps = Math.Max(1, EvalInterval),
        EarlyStoppingPatience = EarlyStoppingPatience,
        CheckpointEverySteps = Math.Max(1, CheckpointInterval),
        Lora = ToLoraOptions(),
        MaxSequenceLength = MaxSeqLen,
        Seed = Seed,
    };

    /// <summary>The run's LoRA adapters; null for full fine-tuning.</summary>
    public LoraOptions? ToLoraOptions() => LoraRank > 0 ? new LoraOptions { Rank = LoraRank, Alpha = LoraAlpha } : null;

    /// <summary>The engine's options for a preference (DPO) run: the same loop settings and beta.</summary>
    public DpoOptions ToDpoOptions(int pairs) => new() { Training = ToSftOptions(pairs), Beta = Beta ?? HyperparameterSpec.AutoBeta };
}

/// <summary>One hyperparameter: its name, range and what "auto" means.</summary>
public sealed record HyperparameterSpec(string Name, double Min, double Max, bool Integer, string Auto, string[]? Choices = null)
{
    public static readonly IReadOnlyList<HyperparameterSpec> All =
    [
        new("n_epochs", 1, 100, true, "3 (1 above 10,000 examples, up to 10 below 100 so a small set gets about 100 steps)"),
        new("batch_size", 1, 256, true, "8, or fewer when the set is small (about 1/10 of the examples, at least 1)"),
        new("learning_rate", 1e-7, 1.0, false, "1e-3 for a model under 50M parameters, 1e-4 up to 1B, 2e-5 above; x10 with LoRA"),
        new("learning_rate_multiplier", 1e-4, 100, false, "1: the automatic learning rate as is (ignored when learning_rate is given); the hosted APIs' name"),
        new("warmup_ratio", 0, 0.5, false, "0.1: linear warm-up over the first 10% of steps"),
        new("lr_scheduler", 0, 0, false, "cosine", ["cosine", "linear", "constant"]),
        new("weight_decay", 0, 1, false, "0.01 (AdamW, not applied to biases and norms)"),
        new("dropout", 0, 0.9, false, "0.1 (embeddings, attention, residuals)"),
        new("early_stopping_patience", 0, 1000, true, "3 evaluations without a better validation loss (0 disables)"),
        new("eval_interval", 1, 1_000_000, true, "about 10 evaluations per run (total steps / 10, at least 1)"),
        new("checkpoint_interval", 1, 1_000_000, true, "the evaluation interval"),
        new("lora_rank", 0, 256, true, "0: full fine-tuning; > 0 trains LoRA adapters of that rank on the attention projections (c_attn for GPT-2, q_proj and v_proj for Llama-family models) and freezes the rest"),
        new("lora_alpha", 1, 1024, false, "2 x lora_rank"),
        new("max_seq_len", 8, 32768, true, "the base model's context length, at most 1024"),
        new("seed", 0, int.MaxValue, true, "42"),
        new("beta", 1e-3, 10, false, "0.1 (dpo only: how far the model may move from its frozen base; lower lets it move further)"),
    ];

    /// <summary>What "auto" means for DPO's beta (as in the DPO paper and TRL).</summary>
    public const double AutoBeta = 0.1;

    /// <summary>
    /// Checks requested values: unknown names, values that are neither a number nor "auto", values out of
    /// range, and names that do not apply to the <paramref name="method"/>. Returns errors keyed by
    /// <c>hyperparameters.&lt;name&gt;</c> for a ValidationProblem.
    /// </summary>
    public static Dictionary<string, string[]> Validate(IReadOnlyDictionary<string, string> requested, string method = TrainingMethods.Supervised)
    {
        var errors = new Dictionary<string, string[]>();
        foreach (var (name, raw) in requested)
        {
            var key = $"hyperparameters.{name}";
            var spec = All.FirstOrDefault(s => s.Name == name);
            if (spec is null)
            {
                errors[key] = [$"Unknown hyperparameter '{name}'. Known: {string.Join(", ", All.Select(s => s.Name))}."];
                continue;
            }
            var value = raw.Trim();
            if (value.Equals("auto", StringComparison.OrdinalIgnoreCase))
                continue;
            if (spec.Choices is not null)
            {
                if (!spec.Choices.Contains(value, StringComparer.OrdinalIgnoreCase))
                    errors[key] = [$"'{value}' is not one of {string.Join(", ", spec.Choices)} or auto."];
                continue;
            }
            if (!double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) || !double.IsFinite(number))
                errors[key] = [$"'{value}' is not a number or \"auto\"."];
            else if (spec.Integer && number != Math.Floor(number))
                errors[key] = [$"{value} must be a whole number."];
            else if (number < spec.Min || number > spec.Max)
                errors[key] = [$"{value} is out of range [{spec.Min.ToString(CultureInfo.InvariantCulture)}, {spec.Max.ToString(CultureInfo.InvariantCulture)}]."];
        }
        if (errors.Count == 0 && requested.TryGetValue("lora_alpha", out var alpha) && !IsAuto(alpha) && (!requested.TryGetValue("lora_rank", out var rank) || IsAuto(rank) || rank.Trim() == "0"))
            errors["hyperparameters.lora_alpha"] = ["lora_alpha applies only with lora_rank > 0."];
        if (errors.Count == 0 && requested.ContainsKey("beta") && method != TrainingMethods.Dpo)
            errors["hyperparameters.beta"] = ["beta applies only to dpo jobs (method.type \"dpo\")."];
        return errors;
    }

    /// <summary>The learning rate "auto" means for a model of this size; a <c>learning_rate_multiplier</c> scales it.</summary>
    public static double AutoLearningRate(long modelParameters, int loraRank)
    {
        var full = modelParameters < 50_000_000 ? 1e-3 : modelParameters < 1_000_000_000 ? 1e-4 : 2e-5;
        return loraRank > 0 ? full * 10 : full;
    }

    private static bool IsAuto(string value) => value.Trim().Equals("auto", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Resolves "auto" and missing values for a data set of <paramref name="examples"/> examples (pairs, for dpo) and a
    /// model. For dpo, "auto" dropout is 0: the policy is compared with its frozen base on the same tokens, and noise
    /// on one side only would blur that comparison.
    /// </summary>
    public static Hyperparameters Resolve(IReadOnlyDictionary<string, string> requested, int examples, long modelParameters, int modelMaxPositions,
        string method = TrainingMethods.Supervised)
    {
        var dpo = method == TrainingMethods.Dpo;
        double? Get(string name) => requested.TryGetValue(name, out var v) && !IsAuto(v) ? double.Parse(v.Trim(), CultureInfo.InvariantCulture) : null;

        var batch = (int)(Get("batch_size") ?? Math.Clamp(examples / 10, 1, 8));
        var stepsPerEpoch = Math.Max(1, (examples + batch - 1) / batch);
        var epochs = (int)(Get("n_epochs") ?? (examples > 10_000 ? 1 : Math.Clamp((int)Math.Ceiling(100.0 / stepsPerEpoch), 3, 10)));
        var loraRank = (int)(Get("lora_rank") ?? 0);
        var total = epochs * stepsPerEpoch;
        var evalInterval = (int)(Get("eval_interval") ?? Math.Max(1, total / 10));
        var scheduler = requested.TryGetValue("lr_scheduler", out var s) && !IsAuto(s) ? s.Trim().ToLowerInvariant() : "cosine";
        return new Hyperparameters
        {
            Epochs = epochs,
            BatchSize = batch,
            LearningRate = Get("learning_rate") ?? AutoLearningRate(modelParameters, loraRank) * (Get("learning_rate_multiplier") ?? 1),
            WarmupRatio = Get("warmup_ratio") ?? 0.1,
            Scheduler = scheduler,
            WeightDecay = Get("weight_decay") ?? 0.01,
            Dropout = Get("dropout") ?? (dpo ? 0 : 0.1),
            EarlyStoppingPatience = (int)(Get("early_stopping_patience") ?? 3),
            EvalInterval = evalInterval,
            CheckpointInterval = (int)(Get("checkpoint_interval") ?? evalInterval),
            LoraRank = loraRank,
            LoraAlpha = Get("lora_alpha") ?? Math.Max(1, 2 * loraRank),
            MaxSeqLen = (int)Math.Min(Get("max_seq_len") ?? Math.Min(modelMaxPositions, 1024), modelMaxPositions),
            Seed = (int)(Get("seed") ?? 42),
            Beta = dpo ? Get("beta") ?? AutoBeta : null,
        };
    }
}

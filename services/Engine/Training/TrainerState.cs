using System.Text.Json;
using System.Text.Json.Serialization;

namespace AspireTune.Engine.Training;

/// <summary>
/// Everything besides tensors that a resumed run needs. Randomness is derived from (seed, step) and
/// (seed, epoch), so the step is the RNG state.
/// </summary>
internal sealed class TrainerState
{
    public int Step { get; set; }
    public long Seed { get; set; }
    public int TotalSteps { get; set; }
    public int BestStep { get; set; }
    public double? BestMetric { get; set; }
    public int EvalsWithoutImprovement { get; set; }
    public List<EvaluationResult> Evaluations { get; set; } = [];
    public List<double> TrainLosses { get; set; } = [];

    /// <summary>Tokens (prompt and completion, padding excluded) of every step so far; kept across resumes.</summary>
    public long TrainedTokens { get; set; }
    public string OptionsFingerprint { get; set; } = "";

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public void Save(string path) => File.WriteAllText(path, JsonSerializer.Serialize(this, Json));

    public static TrainerState Load(string path)
    {
        try
        {
            return JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(path), Json)
                ?? throw new InvalidDataException($"{path}: empty trainer state");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: trainer state is not valid ({e.Message})", e);
        }
    }
}

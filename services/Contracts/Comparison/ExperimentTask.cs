using System.Text.Json.Serialization;
using AspireTune.Contracts.Common;

namespace AspireTune.Contracts.Comparison;

/// <summary>What an experiment's candidates are asked to do; written as <c>classification</c> or <c>generation</c>.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ExperimentTask>))]
public enum ExperimentTask
{
    /// <summary>Each input gets one of the dataset's labels; scored by label match (and label likelihood where the endpoint scores).</summary>
    [JsonStringEnumMemberName("classification")]
    Classification,

    /// <summary>
    /// Each input gets a free-text answer compared with its reference (extraction to JSON, summarisation, short-answer
    /// QA): exact match, token F1, ROUGE-L, JSON field match when every reference is a JSON object, and the LLM judge
    /// where a judge endpoint is configured.
    /// </summary>
    [JsonStringEnumMemberName("generation")]
    Generation,
}

/// <summary>Wire names of <see cref="ExperimentTask"/>.</summary>
public static class ExperimentTasks
{
    private static readonly WireNames<ExperimentTask> Names = new((ExperimentTask.Classification, "classification"), (ExperimentTask.Generation, "generation"));

    /// <summary>Every task's wire name.</summary>
    public static IReadOnlyList<string> All => Names.All;

    /// <summary>The task's wire name.</summary>
    public static string ToWireName(this ExperimentTask task) => Names.Of(task);

    /// <summary>Parses a wire name (case and surrounding space ignored); numbers are not names.</summary>
    public static bool TryParse(string? name, out ExperimentTask task) => Names.TryParse(name, out task);
}

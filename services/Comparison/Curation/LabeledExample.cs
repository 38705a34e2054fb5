using System.Text.Json;
using AspireTune.Contracts.Comparison;
using AspireTune.Contracts.Datasets;

namespace AspireTune.Comparison.Curation;

/// <summary>One example of an experiment dataset with the line it had in the file as received; its label trimmed.</summary>
public sealed record LabeledExample(int Line, string Input, string Expected, IReadOnlyDictionary<string, JsonElement>? Metadata)
{
    public LabelledExample ToRow() => new() { Input = Input, Expected = Expected, Metadata = Metadata };
}

/// <summary>
/// Experiment datasets through the shared reader, with Comparison's rule: every row carries a string label, or for
/// generation a reference answer (a JSON object reference is kept as its JSON text; split files then hold it as a string).
/// </summary>
public static class DatasetReader
{
    /// <summary>Maximum errors listed before the reader stops collecting them (the count stays exact).</summary>
    private const int MaxListedErrors = 50;

    /// <summary>Parses JSONL; every malformed line is reported with its number, none is silently dropped.</summary>
    public static (List<LabeledExample> Examples, List<DatasetError> Errors, int ErrorCount) Parse(ReadOnlySpan<byte> jsonl, ExperimentTask task = ExperimentTask.Classification)
    {
        var read = LabelledJsonl.Read(jsonl, task == ExperimentTask.Generation ? ExpectedLabel.Required : ExpectedLabel.RequiredString);
        var errors = read.Errors;
        return (read.Examples.Select(e => new LabeledExample(e.Line, e.Example.Input, e.Example.Expected!.Trim(), e.Example.Metadata)).ToList(),
            errors.Take(MaxListedErrors).ToList(), errors.Count);
    }

    public static (List<LabeledExample> Examples, List<DatasetError> Errors, int ErrorCount) Parse(string jsonl, ExperimentTask task = ExperimentTask.Classification) =>
        Parse(System.Text.Encoding.UTF8.GetBytes(jsonl), task);
}

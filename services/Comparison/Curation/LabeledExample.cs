using System.Text.Json;
using System.Text.Json.Nodes;

namespace AspireTune.Comparison.Curation;

/// <summary>One line of an experiment dataset: <c>{"input": "...", "expected": "...", "metadata": {...}}</c>.</summary>
public sealed record LabeledExample(int Line, string Input, string Expected, JsonObject? Metadata)
{
    public string ToJsonLine() => new JsonObject
    {
        ["input"] = Input,
        ["expected"] = Expected,
        ["metadata"] = Metadata?.DeepClone(),
    }.ToJsonString();
}

/// <summary>A dataset problem located at its line (1-based), reported back to the user as is.</summary>
public sealed record DatasetError(int Line, string Message);

public static class DatasetReader
{
    /// <summary>Maximum errors listed before the reader stops collecting them (the count stays exact).</summary>
    private const int MaxListedErrors = 50;

    /// <summary>Parses JSONL; every malformed line is reported with its number, none is silently dropped.</summary>
    public static (List<LabeledExample> Examples, List<DatasetError> Errors, int ErrorCount) Parse(string jsonl)
    {
        var examples = new List<LabeledExample>();
        var errors = new List<DatasetError>();
        var errorCount = 0;
        var lineNumber = 0;
        foreach (var raw in jsonl.Split('\n'))
        {
            lineNumber++;
            var line = raw.TrimEnd('\r');
            if (string.IsNullOrWhiteSpace(line))
                continue;
            string? problem = null;
            LabeledExample? example = null;
            try
            {
                if (JsonNode.Parse(line) is not JsonObject obj)
                    problem = "expected a JSON object";
                else if (obj["input"] is not JsonValue input || input.GetValueKind() != JsonValueKind.String || string.IsNullOrWhiteSpace(input.GetValue<string>()))
                    problem = "\"input\" must be a non-empty string";
                else if (obj["expected"] is not JsonValue expected || expected.GetValueKind() != JsonValueKind.String)
                    problem = "\"expected\" must be a string";
                else if (obj["metadata"] is not (null or JsonObject))
                    problem = "\"metadata\" must be an object when present";
                else
                    example = new LabeledExample(lineNumber, input.GetValue<string>(), expected.GetValue<string>().Trim(), (JsonObject?)obj["metadata"]?.DeepClone());
            }
            catch (JsonException ex)
            {
                problem = $"invalid JSON: {ex.Message}";
            }
            if (example is not null)
                examples.Add(example);
            else
            {
                errorCount++;
                if (errors.Count < MaxListedErrors)
                    errors.Add(new DatasetError(lineNumber, problem!));
            }
        }
        return (examples, errors, errorCount);
    }
}

using System.Text.Json;

namespace AspireTune.Contracts.Datasets;

/// <summary>
/// One row of a labelled dataset, the JSONL every service reads: <c>{"input": "...", "expected": "...", "metadata": {...}}</c>.
/// Read and written only through <see cref="LabelledJsonl"/>.
/// </summary>
public sealed record LabelledExample
{
    /// <summary>The text a candidate answers (non-empty).</summary>
    public required string Input { get; init; }

    /// <summary>The expected answer (the label); null when the row is unlabelled. A non-string JSON value is kept as its JSON text.</summary>
    public string? Expected { get; init; }

    /// <summary>Flat key/value fields kept with the row (e.g. <c>id</c>); null when absent.</summary>
    public IReadOnlyDictionary<string, JsonElement>? Metadata { get; init; }
}

/// <summary>A dataset problem located at its line (1-based), reported back to the user as is.</summary>
public sealed record DatasetError
{
    /// <summary>1-based line number in the file as received.</summary>
    public required int Line { get; init; }

    /// <summary>What is wrong with the line, without the line number.</summary>
    public required string Message { get; init; }

    /// <summary><c>line N: message</c>.</summary>
    public override string ToString() => $"line {Line}: {Message}";
}

/// <summary>One non-blank line of a dataset file: its example, or why it is not one.</summary>
public sealed record DatasetLine
{
    /// <summary>1-based line number in the file as received.</summary>
    public required int Line { get; init; }

    /// <summary>The example; null when <see cref="Error"/> is set.</summary>
    public LabelledExample? Example { get; init; }

    /// <summary>Why the line is not an example (without the line number); null for a good line.</summary>
    public string? Error { get; init; }
}

/// <summary>Every non-blank line of a dataset in file order, good or bad.</summary>
public sealed record DatasetReadResult
{
    /// <summary>Non-blank lines in file order; the position in this list is the item index.</summary>
    public required IReadOnlyList<DatasetLine> Lines { get; init; }

    /// <summary>The good lines, with their line numbers.</summary>
    public IEnumerable<(int Line, LabelledExample Example)> Examples => Lines.Where(l => l.Example is not null).Select(l => (l.Line, l.Example!));

    /// <summary>Every bad line.</summary>
    public IReadOnlyList<DatasetError> Errors => Lines.Where(l => l.Error is not null).Select(l => new DatasetError { Line = l.Line, Message = l.Error! }).ToList();
}

/// <summary>What a reader requires of <c>expected</c>.</summary>
public enum ExpectedLabel
{
    /// <summary>Absent or null is an unlabelled row; numbers, booleans and other JSON values are kept as their JSON text.</summary>
    Optional,

    /// <summary>Every row must carry <c>expected</c> as a JSON string (datasets that classifiers are compared on).</summary>
    RequiredString,

    /// <summary>Every row must carry a non-null <c>expected</c>: a string, or another JSON value kept as its JSON text (reference answers).</summary>
    Required,
}

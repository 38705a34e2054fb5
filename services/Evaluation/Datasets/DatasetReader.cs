using System.Text.Json;
using AspireTune.Contracts.Datasets;

namespace AspireTune.Evaluation.Datasets;

/// <summary>One dataset line as a run uses it: the item, or why it cannot be evaluated.</summary>
public sealed record DatasetItem(int Index, int Line, string? Input, string? Expected, string? Error)
{
    /// <summary>The line's <c>metadata</c> object, when it has one (the <c>assert</c> scorer reads its checks there).</summary>
    public IReadOnlyDictionary<string, JsonElement>? Metadata { get; init; }
}

/// <summary>
/// A run's items from the labelled JSONL (<see cref="LabelledJsonl"/>, <c>expected</c> optional). A bad line stays
/// an item with an <see cref="DatasetItem.Error"/>, so every other item of a run is still evaluated.
/// </summary>
public static class DatasetReader
{
    public static List<DatasetItem> Parse(ReadOnlySpan<byte> content) =>
        LabelledJsonl.Read(content).Lines
            .Select((l, index) => new DatasetItem(index, l.Line, l.Example?.Input, l.Example?.Expected, l.Error is null ? null : $"line {l.Line}: {l.Error}") { Metadata = l.Example?.Metadata })
            .ToList();
}

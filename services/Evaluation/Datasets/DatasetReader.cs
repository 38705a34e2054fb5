using System.Text.Json;

namespace AspireTune.Evaluation.Datasets;

/// <summary>One dataset line: the item, or why it cannot be evaluated.</summary>
public sealed record DatasetItem(int Index, int Line, string? Input, string? Expected, string? MetadataJson, string? Error);

/// <summary>
/// Reads evaluation JSONL: one object per line with <c>input</c> (non-empty string), optional <c>expected</c>
/// (string; numbers, booleans and JSON values are kept as their JSON text) and optional <c>metadata</c> (object).
/// Blank lines are skipped; a bad line becomes an item with an <see cref="DatasetItem.Error"/>.
/// </summary>
public static class DatasetReader
{
    public static List<DatasetItem> Parse(ReadOnlySpan<byte> content)
    {
        var items = new List<DatasetItem>();
        if (content.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]))
            content = content[3..];
        var line = 0;
        while (!content.IsEmpty)
        {
            line++;
            var end = content.IndexOf((byte)'\n');
            var raw = end < 0 ? content : content[..end];
            content = end < 0 ? [] : content[(end + 1)..];
            if (raw.Length > 0 && raw[^1] == (byte)'\r')
                raw = raw[..^1];
            if (raw.Trim((byte)' ').IsEmpty)
                continue;
            items.Add(ParseLine(items.Count, line, raw));
        }
        return items;
    }

    private static DatasetItem ParseLine(int index, int line, ReadOnlySpan<byte> raw)
    {
        if (!System.Text.Unicode.Utf8.IsValid(raw))
            return new(index, line, null, null, null, $"line {line}: not valid UTF-8 (save the file as UTF-8)");
        JsonDocument document;
        try
        {
            var reader = new Utf8JsonReader(raw);
            document = JsonDocument.ParseValue(ref reader);
            if (reader.Read())
                return new(index, line, null, null, null, $"line {line}: more than one JSON value on the line");
        }
        catch (JsonException e)
        {
            return new(index, line, null, null, null, $"line {line}: not valid JSON ({e.Message})");
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                return new(index, line, null, null, null, $"line {line}: expected a JSON object, found {root.ValueKind}");
            if (!root.TryGetProperty("input", out var input) || input.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(input.GetString()))
                return new(index, line, null, null, null, $"line {line}: 'input' is missing or not a non-empty string");
            string? expected = null;
            if (root.TryGetProperty("expected", out var e) && e.ValueKind != JsonValueKind.Null)
                expected = e.ValueKind == JsonValueKind.String ? e.GetString() : e.GetRawText();
            string? metadata = null;
            if (root.TryGetProperty("metadata", out var m) && m.ValueKind != JsonValueKind.Null)
            {
                if (m.ValueKind != JsonValueKind.Object)
                    return new(index, line, null, null, null, $"line {line}: 'metadata' must be an object");
                metadata = m.GetRawText();
            }
            return new(index, line, input.GetString(), expected, metadata, null);
        }
    }

    /// <summary>The first bad line's error, or null when every line is an item.</summary>
    public static string? FirstError(IReadOnlyList<DatasetItem> items) => items.FirstOrDefault(i => i.Error is not null)?.Error;
}

using System.Text.Json;
using AspireTune.Contracts.Datasets;

namespace AspireTune.Retrieval.Ingestion;

/// <summary>
/// JSONL content, one record a line: <c>{"input": ..., "expected": ...}</c> is a labelled example (id = stable hash of
/// the input); <c>{"text": ..., "id"?: ...}</c> is a document of its own. <c>metadata</c> is optional on both.
/// </summary>
internal static class JsonlRecords
{
    public static IEnumerable<PendingDocument> Parse(string sourceId, string content, Dictionary<string, JsonElement>? sourceMetadata, int chunkTokens, int overlapTokens, CancellationToken ct = default)
    {
        foreach (var (lineNumber, record) in Records(sourceId, content))
        {
            ct.ThrowIfCancellationRequested();
            var metadata = new Dictionary<string, JsonElement>(sourceMetadata ?? [], StringComparer.Ordinal);
            if (record.TryGetProperty("metadata", out var m))
            {
                if (m.ValueKind != JsonValueKind.Object)
                    throw new RetrievalValidationException($"{sourceId} line {lineNumber}", $"'{sourceId}' line {lineNumber}: metadata must be a JSON object.");
                foreach (var p in m.EnumerateObject())
                    metadata[p.Name] = p.Value.Clone();
            }
            if (record.TryGetProperty("input", out var input))
            {
                var expected = record.TryGetProperty("expected", out var e) ? AsLabel(e) : record.TryGetProperty("label", out var l) ? AsLabel(l) : null;
                yield return RetrievalService.ExampleDocument(RequireString(sourceId, lineNumber, "input", input), expected, metadata);
                continue;
            }
            if (!record.TryGetProperty("text", out var text))
                throw new RetrievalValidationException($"{sourceId} line {lineNumber}", $"'{sourceId}' line {lineNumber}: a record needs 'text' (a passage) or 'input' (a labelled example).");
            var id = record.TryGetProperty("id", out var idValue) ? Index.PointPayload.AsText(idValue) : $"{sourceId}:{lineNumber}";
            var body = RequireString(sourceId, lineNumber, "text", text);
            var chunks = Chunker.Chunk(body, DocumentFormat.Text, chunkTokens, overlapTokens, ct);
            var hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes($"{chunkTokens}/{overlapTokens}\n{JsonSerializer.Serialize(metadata)}\n{body}")));
            yield return new PendingDocument(id, hash, chunks.Select((c, n) => new PendingChunk(RetrievalService.StableId($"{id}\n{n}\n{c}"), c, null, metadata)).ToList());
        }
    }

    /// <summary>Reads a dataset artifact's lines (<c>input</c>, <c>expected</c>, <c>metadata</c>) as labelled examples; the first bad line is refused.</summary>
    public static List<PendingDocument> ParseDataset(string sourceId, ReadOnlySpan<byte> content)
    {
        var read = LabelledJsonl.Read(content);
        if (read.Errors.FirstOrDefault() is { } error)
            throw new RetrievalValidationException($"{sourceId} line {error.Line}", $"Dataset '{sourceId}' {error}.");
        return read.Examples.Select(e => RetrievalService.ExampleDocument(e.Example.Input, e.Example.Expected,
            e.Example.Metadata?.ToDictionary(StringComparer.Ordinal))).ToList();
    }

    /// <summary>Each non-blank line as a JSON object, with its 1-based line number for error messages.</summary>
    private static IEnumerable<(int Line, JsonElement Record)> Records(string sourceId, string content)
    {
        var lines = content.Split('\n');
        for (var i = 0; i < lines.Length; i++)
            if (lines[i].Trim() is { Length: > 0 } line)
                yield return (i + 1, ParseLine(sourceId, line, i + 1));
    }

    private static JsonElement ParseLine(string sourceId, string line, int lineNumber)
    {
        try
        {
            using var document = JsonDocument.Parse(line);
            return document.RootElement.ValueKind == JsonValueKind.Object
                ? document.RootElement.Clone()
                : throw new RetrievalValidationException($"{sourceId} line {lineNumber}", $"'{sourceId}' line {lineNumber} is not a JSON object.");
        }
        catch (JsonException e)
        {
            throw new RetrievalValidationException($"{sourceId} line {lineNumber}", $"'{sourceId}' line {lineNumber} is not valid JSON: {e.Message}");
        }
    }

    private static string RequireString(string sourceId, int lineNumber, string field, JsonElement value) =>
        value.ValueKind == JsonValueKind.String && !string.IsNullOrWhiteSpace(value.GetString())
            ? value.GetString()!
            : throw new RetrievalValidationException($"{sourceId} line {lineNumber}", $"'{sourceId}' line {lineNumber}: '{field}' must be a non-empty string.");

    private static string? AsLabel(JsonElement value) => value.ValueKind is JsonValueKind.Null ? null : Index.PointPayload.AsText(value);
}

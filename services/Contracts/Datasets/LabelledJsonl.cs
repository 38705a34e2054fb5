using System.Text;
using System.Text.Json;
using AspireTune.Contracts.Common;

namespace AspireTune.Contracts.Datasets;

/// <summary>
/// The one reader and writer of labelled dataset JSONL. A line is one JSON object with <c>input</c> (non-empty
/// string), <c>expected</c> (see <see cref="ExpectedLabel"/>) and optional <c>metadata</c> (an object). Blank
/// lines and a leading UTF-8 byte order mark are skipped; every other line becomes an example or an error that
/// names its line, so none is dropped silently.
/// </summary>
public static class LabelledJsonl
{
    /// <summary>Reads UTF-8 JSONL.</summary>
    public static DatasetReadResult Read(ReadOnlySpan<byte> content, ExpectedLabel expected = ExpectedLabel.Optional)
    {
        var lines = new List<DatasetLine>();
        var reader = new JsonlLines(content);
        while (reader.TryNext(out var number, out var raw))
        {
            var (example, error) = ParseLine(raw, expected);
            lines.Add(new DatasetLine { Line = number, Example = example, Error = error });
        }
        return new DatasetReadResult { Lines = lines };
    }

    /// <summary>Reads JSONL held as text.</summary>
    public static DatasetReadResult Read(string content, ExpectedLabel expected = ExpectedLabel.Optional) =>
        Read(Encoding.UTF8.GetBytes(content), expected);

    /// <summary>One example as one JSON line (no newline).</summary>
    public static string ToLine(LabelledExample example) => JsonSerializer.Serialize(example, ContractJson.Options);

    /// <summary>The examples as UTF-8 JSONL, one line each, every line ending in a newline.</summary>
    public static byte[] Write(IEnumerable<LabelledExample> examples)
    {
        using var buffer = new MemoryStream();
        foreach (var example in examples)
        {
            JsonSerializer.Serialize(buffer, example, ContractJson.Options);
            buffer.WriteByte((byte)'\n');
        }
        return buffer.ToArray();
    }

    private static (LabelledExample?, string?) ParseLine(ReadOnlySpan<byte> raw, ExpectedLabel rule)
    {
        // Checked first: the JSON reader accepts invalid UTF-8 inside strings and fails only when they are read.
        if (!System.Text.Unicode.Utf8.IsValid(raw))
            return (null, "not valid UTF-8 (save the file as UTF-8)");
        try
        {
            return ParseValidLine(raw, rule);
        }
        catch (InvalidOperationException)
        {
            return (null, "a \\u escape is not valid UTF-16 (a lone surrogate)");
        }
    }

    private static (LabelledExample?, string?) ParseValidLine(ReadOnlySpan<byte> raw, ExpectedLabel rule)
    {
        JsonDocument document;
        try
        {
            var reader = new Utf8JsonReader(raw, new JsonReaderOptions { AllowMultipleValues = true });
            document = JsonDocument.ParseValue(ref reader);
            if (reader.Read())
            {
                document.Dispose();
                return (null, "more than one JSON value on the line");
            }
        }
        catch (JsonException e)
        {
            return (null, $"not valid JSON ({e.Message})");
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                return (null, $"expected a JSON object, found {root.ValueKind}");
            if (!root.TryGetProperty("input", out var input) || input.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(input.GetString()))
                return (null, "'input' is missing or not a non-empty string");
            string? expected = null;
            var hasExpected = root.TryGetProperty("expected", out var e) && e.ValueKind != JsonValueKind.Null;
            if (rule == ExpectedLabel.RequiredString && (!hasExpected || e.ValueKind != JsonValueKind.String))
                return (null, "'expected' must be a string");
            if (rule == ExpectedLabel.Required && !hasExpected)
                return (null, "'expected' is missing (a reference answer: a string or a JSON value)");
            if (hasExpected)
                expected = e.ValueKind == JsonValueKind.String ? e.GetString() : e.GetRawText();
            Dictionary<string, JsonElement>? metadata = null;
            if (root.TryGetProperty("metadata", out var m) && m.ValueKind != JsonValueKind.Null)
            {
                if (m.ValueKind != JsonValueKind.Object)
                    return (null, "'metadata' must be an object when present");
                metadata = m.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.Clone(), StringComparer.Ordinal);
            }
            return (new LabelledExample { Input = input.GetString()!, Expected = expected, Metadata = metadata }, null);
        }
    }
}

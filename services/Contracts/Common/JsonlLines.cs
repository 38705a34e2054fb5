namespace AspireTune.Contracts.Common;

/// <summary>Walks UTF-8 JSONL line by line: skips a leading byte order mark and blank lines, keeps 1-based line numbers.</summary>
public ref struct JsonlLines
{
    private ReadOnlySpan<byte> _rest;
    private int _number;

    /// <summary>Starts at the first line of <paramref name="content"/>.</summary>
    public JsonlLines(ReadOnlySpan<byte> content) => _rest = content.StartsWith("\uFEFF"u8) ? content[3..] : content;

    /// <summary>The next non-blank line (without its line ending) and its 1-based number; false at the end.</summary>
    public bool TryNext(out int line, out ReadOnlySpan<byte> text)
    {
        while (!_rest.IsEmpty)
        {
            _number++;
            var end = _rest.IndexOf((byte)'\n');
            var raw = end < 0 ? _rest : _rest[..end];
            _rest = end < 0 ? [] : _rest[(end + 1)..];
            if (raw.Length > 0 && raw[^1] == (byte)'\r')
                raw = raw[..^1];
            if (raw.Trim(" \t"u8).IsEmpty)
                continue;
            line = _number;
            text = raw;
            return true;
        }
        line = _number;
        text = default;
        return false;
    }
}

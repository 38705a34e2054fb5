namespace AspireTune.Contracts.Common;

/// <summary>The wire names of an enum's values, as the API, the bus and the database hold them; parsed by name only, never by number.</summary>
public sealed class WireNames<T>(params (T Value, string Name)[] names) where T : struct, Enum
{
    /// <summary>Every wire name, in declaration order.</summary>
    public IReadOnlyList<string> All { get; } = names.Select(n => n.Name).ToArray();

    /// <summary>The value's wire name.</summary>
    public string Of(T value) => names.First(n => EqualityComparer<T>.Default.Equals(n.Value, value)).Name;

    /// <summary>Parses a wire name (case and surrounding space ignored).</summary>
    public bool TryParse(string? name, out T value)
    {
        foreach (var n in names)
            if (string.Equals(n.Name, name?.Trim(), StringComparison.OrdinalIgnoreCase))
            {
                value = n.Value;
                return true;
            }
        value = default;
        return false;
    }
}

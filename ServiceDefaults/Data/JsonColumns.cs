using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.ChangeTracking;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace AspireTune.ServiceDefaults.Data;

/// <summary>
/// Typed entity properties stored as one JSON text column, mapped by EF value conversion: entities and the code
/// using them see the type, never the text, and the column (name, type, stored JSON) stays what it was, so rows
/// written before still read. EF's <c>ToJson</c> complex-type mapping is not used: it writes CLR property names
/// (the stored rows use System.Text.Json's web names) and cannot map dictionaries or the contracts' records.
/// </summary>
public static class JsonColumns
{
    /// <summary>
    /// Stores the property as JSON (<see cref="JsonSerializerOptions.Web"/> unless given) in <paramref name="column"/>;
    /// changes are detected by comparing the JSON, so mutating a stored list or dictionary in place is saved too.
    /// </summary>
    public static PropertyBuilder<T> HasJsonConversion<T>(this PropertyBuilder<T> property, string column, JsonSerializerOptions? options = null)
    {
        var json = options ?? JsonSerializerOptions.Web;
        var comparer = new ValueComparer<T>(
            (a, b) => JsonSerializer.Serialize(a, json) == JsonSerializer.Serialize(b, json),
            v => JsonSerializer.Serialize(v, json).GetHashCode(StringComparison.Ordinal),
            v => JsonSerializer.Deserialize<T>(JsonSerializer.Serialize(v, json), json)!);
        return property.HasColumnName(column).HasConversion(v => JsonSerializer.Serialize(v, json), s => JsonSerializer.Deserialize<T>(s, json)!, comparer);
    }
}

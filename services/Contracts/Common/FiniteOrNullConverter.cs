using System.Text.Json;
using System.Text.Json.Serialization;

namespace AspireTune.Contracts.Common;

/// <summary>An undefined statistic (no successful call, so no latency) is written as null and read back as NaN, never written as NaN.</summary>
public sealed class FiniteOrNullConverter : JsonConverter<double>
{
    /// <inheritdoc />
    public override bool HandleNull => true;

    /// <inheritdoc />
    public override double Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.Null ? double.NaN : reader.GetDouble();

    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, double value, JsonSerializerOptions options)
    {
        if (double.IsFinite(value))
            writer.WriteNumberValue(value);
        else
            writer.WriteNullValue();
    }
}

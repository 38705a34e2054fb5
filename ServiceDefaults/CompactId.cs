namespace AspireTune.ServiceDefaults;

/// <summary>
/// Names derived from a Guid (experiment slugs, checkpoint and model ids) that keep all 128 bits, in 26 lowercase
/// base-32 characters (Crockford's alphabet: digits and letters, no i, l, o, u), so they fit the lowercase
/// <c>[a-z0-9-]</c> names that collections, suffixes and prompts allow.
/// </summary>
/// <remarks>
/// Never cut a Guid's text instead: MassTransit's <c>NewId</c> values are sequential and share their leading
/// digits for minutes, so a prefix collides across everything created in that time.
/// </remarks>
public static class CompactId
{
    private const string Alphabet = "0123456789abcdefghjkmnpqrstvwxyz";

    /// <summary>Length of every encoded id.</summary>
    public const int Length = 26;

    /// <summary>The id as 26 base-32 characters, most significant first (the Guid's big-endian bytes).</summary>
    public static string Encode(Guid id)
    {
        Span<byte> bytes = stackalloc byte[16];
        id.TryWriteBytes(bytes, bigEndian: true, out _);
        var value = new UInt128(
            System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(bytes),
            System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]));
        return string.Create(Length, value, static (chars, v) =>
        {
            for (var i = Length - 1; i >= 0; i--)
            {
                chars[i] = Alphabet[(int)(v & 31)];
                v >>= 5;
            }
        });
    }

    /// <summary>Reads an id written by <see cref="Encode"/>; false for anything else.</summary>
    public static bool TryDecode(ReadOnlySpan<char> text, out Guid id)
    {
        id = Guid.Empty;
        if (text.Length != Length)
            return false;
        UInt128 value = 0;
        foreach (var c in text)
        {
            var digit = Alphabet.IndexOf(c);
            if (digit < 0)
                return false;
            value = (value << 5) | (uint)digit;
        }
        // 26 x 5 = 130 bits: the two top bits must be zero for a 128-bit value (checked by the first character)
        if (Alphabet.IndexOf(text[0]) > 7)
            return false;
        Span<byte> bytes = stackalloc byte[16];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(bytes, (ulong)(value >> 64));
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(bytes[8..], (ulong)value);
        id = new Guid(bytes, bigEndian: true);
        return true;
    }
}

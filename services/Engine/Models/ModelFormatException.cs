namespace AspireTune.Engine.Models;

/// <summary>
/// A checkpoint, config or tokenizer file that the engine cannot use: the message names the file and,
/// where one is involved, the tensor. Thrown before any native code sees the bad data.
/// </summary>
public sealed class ModelFormatException(string message, string? file = null, string? tensor = null, Exception? inner = null)
    : IOException(message, inner)
{
    /// <summary>The offending file, as given to the loader.</summary>
    public string? File { get; } = file;

    /// <summary>The offending tensor name, when the problem is one tensor.</summary>
    public string? Tensor { get; } = tensor;
}

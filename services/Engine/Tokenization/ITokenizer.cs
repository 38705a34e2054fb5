namespace AspireTune.Engine.Tokenization;

/// <summary>Text to token ids and back, as the model's checkpoint defines it.</summary>
public interface ITokenizer
{
    /// <summary>Number of ids the tokenizer can produce (base vocabulary plus added tokens).</summary>
    int Count { get; }

    /// <summary>End-of-text token, appended after each training completion and stopping generation.</summary>
    int? EosTokenId { get; }

    /// <summary>Token prepended to every sequence, when the family uses one (Llama); null for GPT-2.</summary>
    int? BosTokenId { get; }

    IReadOnlyList<int> Encode(string text);

    /// <summary>
    /// The ids of <paramref name="completion"/> as they follow <paramref name="prompt"/> (a training example): byte-level
    /// BPE encodes it alone, its pre-tokenizer splitting there anyway. SentencePiece-style BPE marks the start of a
    /// text with "▁", so it takes them from the encoding of the whole text, as TRL does.
    /// </summary>
    IReadOnlyList<int> EncodeCompletion(string prompt, string completion) => Encode(completion);

    string Decode(IEnumerable<int> ids);

    /// <summary>
    /// The raw bytes of one token (UTF-8 fragments), for streaming output that may split characters; none for an id no
    /// token has (a model's embeddings may have more rows than the tokenizer has tokens), which <see cref="Decode"/> skips.
    /// </summary>
    byte[] TokenBytes(int id);

    /// <summary>Writes the tokenizer files into a Hugging Face model directory.</summary>
    void Save(string directory);
}

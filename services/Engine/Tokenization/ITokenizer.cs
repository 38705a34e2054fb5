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

    string Decode(IEnumerable<int> ids);

    /// <summary>The raw bytes of one token (UTF-8 fragments), for streaming output that may split characters.</summary>
    byte[] TokenBytes(int id);

    /// <summary>Writes the tokenizer files into a Hugging Face model directory.</summary>
    void Save(string directory);
}

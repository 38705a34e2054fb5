using System.Numerics.Tensors;
using AspireTune.Retrieval.Search;
using Microsoft.Extensions.AI;

namespace AspireTune.Retrieval.Embeddings;

/// <summary>
/// Offline embeddings that need no model: words, word bigrams and character 3- to 5-grams are hashed into a fixed
/// number of dimensions with a hash-chosen sign (the "hashing trick"), weighted by sublinear term frequency, with
/// function words down-weighted in place of corpus IDF, then L2-normalised so cosine is a dot product.
/// Captures lexical and morphological overlap, not meaning: a hosted model does better on paraphrases.
/// </summary>
public sealed class HashingEmbeddingGenerator : IEmbeddingGenerator<string, Embedding<float>>
{
    public const string ModelName = "local-hashing";
    private const float WordWeight = 1.0f;
    private const float BigramWeight = 0.6f;
    private const float CharGramWeight = 0.25f;
    private const float StopWordFactor = 0.15f;

    public HashingEmbeddingGenerator(int dimensions)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dimensions, 8);
        Dimensions = dimensions;
        Metadata = new EmbeddingGeneratorMetadata("aspiretune-local", null, ModelName, dimensions);
    }

    public int Dimensions { get; }

    public EmbeddingGeneratorMetadata Metadata { get; }

    public Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        var now = DateTimeOffset.UtcNow;
        var result = new GeneratedEmbeddings<Embedding<float>>(values.Select(v => new Embedding<float>(Embed(v)) { ModelId = ModelName, CreatedAt = now }));
        return Task.FromResult(result);
    }

    public float[] Embed(string text)
    {
        var features = new Dictionary<ulong, float>();
        void Add(ulong hash, float weight) => features[hash] = features.GetValueOrDefault(hash) + weight;

        var tokens = TextAnalyzer.Tokens(text);
        Span<char> buffer = stackalloc char[80];
        for (var i = 0; i < tokens.Count; i++)
        {
            var token = tokens[i];
            var factor = TextAnalyzer.IsStopWord(token) ? StopWordFactor : 1f;
            Add(TextAnalyzer.Hash(token, 1), WordWeight * factor);
            if (i + 1 < tokens.Count)
                Add(TextAnalyzer.Hash(tokens[i + 1], TextAnalyzer.Hash(token, 2)), BigramWeight * factor);
            if (factor < 1f || token.Length + 2 > buffer.Length)
                continue;
            // Character n-grams of "<token>" let inflections and typos share dimensions.
            var padded = buffer[..(token.Length + 2)];
            padded[0] = '<';
            token.AsSpan().CopyTo(padded[1..]);
            padded[^1] = '>';
            for (var n = 3; n <= 5; n++)
                for (var s = 0; s + n <= padded.Length; s++)
                    Add(TextAnalyzer.Hash(padded.Slice(s, n), (ulong)(3 + n)), CharGramWeight);
        }

        var vector = new float[Dimensions];
        foreach (var (hash, count) in features)
        {
            var index = (int)(hash % (ulong)Dimensions);
            var sign = (hash >> 63) == 0 ? 1f : -1f;
            vector[index] += sign * (1 + MathF.Log(1 + count)); // sublinear: a repeated word is not ten times the meaning
        }
        var norm = TensorPrimitives.Norm(vector);
        if (norm > 0)
            TensorPrimitives.Divide(vector, norm, vector);
        return vector;
    }

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is not null ? null
        : serviceType == typeof(EmbeddingGeneratorMetadata) ? Metadata
        : serviceType.IsInstanceOfType(this) ? this
        : null;

    public void Dispose()
    {
    }
}

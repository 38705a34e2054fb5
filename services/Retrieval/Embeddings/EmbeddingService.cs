using System.ClientModel;
using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;
using OpenAI;

namespace AspireTune.Retrieval.Embeddings;

/// <summary>
/// Turns texts into vectors for a collection's embedding model: <c>local-hashing</c> in process, any other name through
/// the OpenAI-compatible endpoint of <see cref="HostedEmbeddingOptions"/>. Both are <see cref="IEmbeddingGenerator{TInput, TEmbedding}"/>.
/// </summary>
public sealed class EmbeddingService(IOptions<RetrievalOptions> options, IOptions<HostedEmbeddingOptions> hosted)
{
    private readonly ConcurrentDictionary<(string Model, int Dimensions), IEmbeddingGenerator<string, Embedding<float>>> _generators = new();

    public static bool IsLocal(string model) => model == HashingEmbeddingGenerator.ModelName;

    /// <summary>Refuses a hosted model when no endpoint is configured, before anything is written.</summary>
    public void EnsureAvailable(string model)
    {
        if (!IsLocal(model) && hosted.Value.Endpoint is null)
            throw new RetrievalValidationException("embeddingModel",
                $"Embedding model '{model}' is hosted, but no endpoint is configured (Retrieval:HostedEmbeddings:Endpoint). Use '{HashingEmbeddingGenerator.ModelName}' or configure the endpoint and key.");
    }

    public IEmbeddingGenerator<string, Embedding<float>> Generator(string model, int dimensions)
    {
        EnsureAvailable(model);
        return _generators.GetOrAdd((model, dimensions), key =>
        {
            if (IsLocal(key.Model))
                return new HashingEmbeddingGenerator(key.Dimensions);
            var settings = hosted.Value;
            var client = new OpenAIClient(
                new ApiKeyCredential(string.IsNullOrEmpty(settings.ApiKey) ? "none" : settings.ApiKey),
                new OpenAIClientOptions { Endpoint = settings.Endpoint, NetworkTimeout = TimeSpan.FromSeconds(settings.TimeoutSeconds) });
            return client.GetEmbeddingClient(key.Model).AsIEmbeddingGenerator()
                .AsBuilder()
                .UseOpenTelemetry(sourceName: RetrievalTelemetry.Name)
                .Build();
        });
    }

    /// <summary>
    /// What <c>/v1/embeddings</c> answers: the same path as indexing (<see cref="EmbedAsync"/>), so the vectors equal
    /// a collection's of that model and dimensions. A hosted model gets <paramref name="dimensions"/> passed on
    /// when given (&gt; 0) and is otherwise left at its own size.
    /// </summary>
    public Task<float[][]> EmbedForClientAsync(string model, int dimensions, IReadOnlyList<string> texts, CancellationToken ct) =>
        EmbedAsync("/v1/embeddings", model, dimensions, texts, ct, IsLocal(model) || dimensions <= 0 ? null : new EmbeddingGenerationOptions { Dimensions = dimensions });

    /// <summary>Embeds in batches and checks every vector has the collection's dimensions (0: any, the model's own).</summary>
    public async Task<float[][]> EmbedAsync(string collection, string model, int dimensions, IReadOnlyList<string> texts, CancellationToken ct,
        EmbeddingGenerationOptions? generation = null)
    {
        var generator = Generator(model, dimensions);
        var vectors = new float[texts.Count][];
        var start = Stopwatch.GetTimestamp();
        for (var offset = 0; offset < texts.Count; offset += options.Value.EmbeddingBatchSize)
        {
            var batch = texts.Skip(offset).Take(options.Value.EmbeddingBatchSize).ToList();
            GeneratedEmbeddings<Embedding<float>> embeddings;
            try
            {
                embeddings = await generator.GenerateAsync(batch, generation, ct);
            }
            catch (ClientResultException e) when (e.Status is 0 or 408 or 429 or >= 500)
            {
                throw new DependencyUnavailableException($"The embedding endpoint did not answer for model '{model}' (status {e.Status}) after its retries: {e.Message}", e);
            }
            catch (ClientResultException e)
            {
                throw new DependencyFailedException($"The embedding endpoint refused model '{model}' (status {e.Status}): {e.Message}");
            }
            catch (HttpRequestException e)
            {
                throw new DependencyUnavailableException($"The embedding endpoint for model '{model}' is unreachable: {e.Message}", e);
            }
            if (embeddings.Count != batch.Count)
                throw new DependencyFailedException($"The embedding endpoint returned {embeddings.Count} vectors for {batch.Count} texts (model '{model}').");
            for (var i = 0; i < batch.Count; i++)
            {
                var vector = embeddings[i].Vector.ToArray();
                if (dimensions > 0 && vector.Length != dimensions)
                    throw new DimensionMismatchException(collection, model, dimensions, vector.Length);
                vectors[offset + i] = vector;
            }
        }
        RetrievalTelemetry.EmbeddingDuration.Record(Stopwatch.GetElapsedTime(start).TotalSeconds, new KeyValuePair<string, object?>("model", model));
        RetrievalTelemetry.TextsEmbedded.Add(texts.Count, new KeyValuePair<string, object?>("model", model));
        return vectors;
    }
}

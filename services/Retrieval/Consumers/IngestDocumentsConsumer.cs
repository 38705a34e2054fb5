using System.Text;
using AspireTune.Contracts.Common;
using AspireTune.Contracts.Retrieval;
using AspireTune.Retrieval.Apis;
using AspireTune.Retrieval.Data;
using AspireTune.Retrieval.Ingestion;
using AspireTune.ServiceDefaults.Artifacts;
using AspireTune.ServiceDefaults.Data;
using MassTransit;
using Microsoft.Extensions.Options;

namespace AspireTune.Retrieval.Consumers;

/// <summary>
/// Chunks, embeds and indexes document artifacts, then publishes <see cref="CollectionIndexed"/>. A document's id is
/// its file name, so a new version of the same file replaces the old one. Idempotent through the inbox and upserts.
/// </summary>
public sealed class IngestDocumentsConsumer(RetrievalService service, RetrievalDbContext db, IArtifactStore artifacts, IOptions<RetrievalOptions> options, ILogger<IngestDocumentsConsumer> logger)
    : IConsumer<IngestDocuments>
{
    private const string RequestInbox = nameof(IngestDocumentsConsumer) + ":request";

    public async Task Consume(ConsumeContext<IngestDocuments> context)
    {
        var message = context.Message;
        var ct = context.CancellationToken;
        // A redelivery repeats the message id; a re-send by the workflow repeats the request id: both were done.
        if (await db.AlreadyProcessedAsync(context.MessageId, nameof(IngestDocumentsConsumer), ct) || await db.AlreadyProcessedAsync(message.RequestId, RequestInbox, ct))
        {
            logger.LogInformation("IngestDocuments {RequestId} was already processed; redelivery ignored", message.RequestId);
            return;
        }
        var total = message.Documents.Sum(d => d.Length);
        if (total > options.Value.MaxUploadBytes)
            throw new PayloadTooLargeException(total, options.Value.MaxUploadBytes, $"The {message.Documents.Count} documents");
        var collection = await service.EnsureCollectionAsync(message.Collection, ct);
        var documents = new List<DocumentInput>();
        foreach (var artifact in message.Documents)
        {
            var text = Encoding.UTF8.GetString(await artifacts.ReadVerifiedAsync(artifact, ct));
            documents.Add(new DocumentInput { Id = Path.GetFileName(artifact.Id), Text = text, Format = FormatOf(artifact) });
        }
        var result = await service.IngestAsync(collection.Name, documents, message.ChunkTokens, message.ChunkOverlapTokens,
            d =>
        {
            d.MarkProcessed(context.MessageId, nameof(IngestDocumentsConsumer));
            d.MarkProcessed(message.RequestId, RequestInbox);
        }, ct);
        await context.Publish(new CollectionIndexed
        {
            RequestId = message.RequestId,
            ExperimentId = message.ExperimentId,
            Collection = collection.Name,
            Documents = message.Documents.Count,
            Points = result.Points,
            EmbeddingModel = collection.EmbeddingModel,
            Dimensions = collection.Dimensions,
            IndexedAt = DateTimeOffset.UtcNow,
        }, ct);
    }

    internal static DocumentFormat FormatOf(ArtifactRef artifact)
    {
        var extension = Path.GetExtension(artifact.Id).ToLowerInvariant();
        return artifact.ContentType switch
        {
            "text/markdown" => DocumentFormat.Markdown,
            "application/jsonl" or "application/x-ndjson" or "application/jsonlines" => DocumentFormat.Jsonl,
            _ when extension is ".md" or ".markdown" => DocumentFormat.Markdown,
            _ when extension is ".jsonl" or ".ndjson" => DocumentFormat.Jsonl,
            _ => DocumentFormat.Text,
        };
    }
}

public sealed class IngestDocumentsConsumerDefinition : ConsumerDefinition<IngestDocumentsConsumer>
{
    public IngestDocumentsConsumerDefinition() => ConcurrentMessageLimit = 1;
}

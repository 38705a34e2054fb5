using System.Text;
using AspireTune.Contracts.Common;
using AspireTune.Contracts.Retrieval;
using AspireTune.Retrieval.Apis;
using AspireTune.Retrieval.Data;
using AspireTune.Retrieval.Ingestion;
using AspireTune.ServiceDefaults.Artifacts;
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
    public async Task Consume(ConsumeContext<IngestDocuments> context)
    {
        var message = context.Message;
        if (await IndexingRequests.AlreadyDoneAsync(db, context, message.RequestId, nameof(IngestDocumentsConsumer)))
        {
            logger.LogInformation("IngestDocuments {RequestId} was already processed; redelivery ignored", message.RequestId);
            return;
        }
        var total = message.Documents.Sum(d => d.Length);
        if (total > options.Value.MaxUploadBytes)
            throw new PayloadTooLargeException(total, options.Value.MaxUploadBytes, $"The {message.Documents.Count} documents");
        var collection = await service.EnsureCollectionAsync(message.Collection, context.CancellationToken);
        var documents = new List<DocumentInput>();
        foreach (var artifact in message.Documents)
        {
            var text = Encoding.UTF8.GetString(await artifacts.ReadVerifiedAsync(artifact, context.CancellationToken));
            documents.Add(new DocumentInput { Id = Path.GetFileName(artifact.Id), Text = text, Format = FormatOf(artifact) });
        }
        await service.IngestAsync(collection.Name, documents, message.ChunkTokens, message.ChunkOverlapTokens,
            IndexingRequests.MarkDoneAndAnnounce(context, message.RequestId, nameof(IngestDocumentsConsumer), message.ExperimentId, collection, message.Documents.Count), context.CancellationToken);
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

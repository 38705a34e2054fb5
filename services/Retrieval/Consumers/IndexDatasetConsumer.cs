using AspireTune.Contracts.Retrieval;
using AspireTune.Retrieval.Data;
using AspireTune.Retrieval.Ingestion;
using AspireTune.ServiceDefaults.Artifacts;
using MassTransit;
using Microsoft.Extensions.Options;

namespace AspireTune.Retrieval.Consumers;

/// <summary>
/// Indexes a dataset's examples (JSONL <c>input</c>/<c>expected</c>/<c>metadata</c>) for dynamic few-shot and kNN,
/// then publishes <see cref="CollectionIndexed"/>. Idempotent twice over: the inbox skips a message or request seen
/// before, and points are upserted by the stable hash of their input, so even new data for the same inputs adds nothing.
/// </summary>
public sealed class IndexDatasetConsumer(RetrievalService service, RetrievalDbContext db, IArtifactStore artifacts, IOptions<RetrievalOptions> options, ILogger<IndexDatasetConsumer> logger)
    : IConsumer<IndexDataset>
{
    public async Task Consume(ConsumeContext<IndexDataset> context)
    {
        var message = context.Message;
        if (await IndexingRequests.AlreadyDoneAsync(db, context, message.RequestId, nameof(IndexDatasetConsumer)))
        {
            logger.LogInformation("IndexDataset {RequestId} was already processed; redelivery ignored", message.RequestId);
            return;
        }
        if (message.Dataset.Length > options.Value.MaxUploadBytes)
            throw new PayloadTooLargeException(message.Dataset.Length, options.Value.MaxUploadBytes, $"Dataset '{message.Dataset.Id}'");
        var collection = await service.EnsureCollectionAsync(message.Collection, context.CancellationToken);
        var bytes = await artifacts.ReadVerifiedAsync(message.Dataset, context.CancellationToken);
        var examples = JsonlRecords.ParseDataset(message.Dataset.Id, bytes);
        if (examples.Count == 0)
            throw new RetrievalValidationException(message.Dataset.Id, $"Dataset '{message.Dataset.Id}' has no examples.");
        await service.WriteExamplesAsync(collection.Name, examples,
            IndexingRequests.MarkDoneAndAnnounce(context, message.RequestId, nameof(IndexDatasetConsumer), message.ExperimentId, collection, examples.Count), context.CancellationToken);
    }
}

/// <summary>One dataset at a time per instance: indexing is CPU- and memory-heavy, and writes to one collection serialise anyway.</summary>
public sealed class IndexDatasetConsumerDefinition : ConsumerDefinition<IndexDatasetConsumer>
{
    public IndexDatasetConsumerDefinition() => ConcurrentMessageLimit = 1;
}

using System.Text;
using AspireTune.Contracts.Retrieval;
using AspireTune.Retrieval.Data;
using AspireTune.Retrieval.Ingestion;
using AspireTune.ServiceDefaults.Artifacts;
using AspireTune.ServiceDefaults.Data;
using MassTransit;
using Microsoft.Extensions.Options;

namespace AspireTune.Retrieval.Consumers;

/// <summary>
/// Indexes a dataset's examples (JSONL <c>input</c>/<c>expected</c>/<c>metadata</c>) for dynamic few-shot and kNN,
/// then publishes <see cref="CollectionIndexed"/>. Idempotent twice over: the inbox skips a redelivered message, and
/// points are upserted by the stable hash of their input, so even a new message for the same data adds nothing.
/// </summary>
public sealed class IndexDatasetConsumer(RetrievalService service, RetrievalDbContext db, IArtifactStore artifacts, IOptions<RetrievalOptions> options, ILogger<IndexDatasetConsumer> logger)
    : IConsumer<IndexDataset>
{
    private const string RequestInbox = nameof(IndexDatasetConsumer) + ":request";

    public async Task Consume(ConsumeContext<IndexDataset> context)
    {
        var message = context.Message;
        var ct = context.CancellationToken;
        // A redelivery repeats the message id; a re-send by the workflow repeats the request id: both were done.
        if (await db.AlreadyProcessedAsync(context.MessageId, nameof(IndexDatasetConsumer), ct) || await db.AlreadyProcessedAsync(message.RequestId, RequestInbox, ct))
        {
            logger.LogInformation("IndexDataset {RequestId} was already processed; redelivery ignored", message.RequestId);
            return;
        }
        if (message.Dataset.Length > options.Value.MaxUploadBytes)
            throw new PayloadTooLargeException(message.Dataset.Length, options.Value.MaxUploadBytes, $"Dataset '{message.Dataset.Id}'");
        var collection = await service.EnsureCollectionAsync(message.Collection, ct);
        var bytes = await artifacts.ReadVerifiedAsync(message.Dataset, ct);
        var examples = JsonlRecords.ParseDataset(message.Dataset.Id, Encoding.UTF8.GetString(bytes));
        if (examples.Count == 0)
            throw new RetrievalValidationException(message.Dataset.Id, $"Dataset '{message.Dataset.Id}' has no examples.");
        var result = await service.WriteExamplesAsync(collection.Name, examples, d =>
        {
            d.MarkProcessed(context.MessageId, nameof(IndexDatasetConsumer));
            d.MarkProcessed(message.RequestId, RequestInbox);
        }, ct);
        await context.Publish(new CollectionIndexed
        {
            RequestId = message.RequestId,
            ExperimentId = message.ExperimentId,
            Collection = collection.Name,
            Documents = examples.Count,
            Points = result.Points,
            EmbeddingModel = collection.EmbeddingModel,
            Dimensions = collection.Dimensions,
            IndexedAt = DateTimeOffset.UtcNow,
        }, ct);
    }
}

/// <summary>One dataset at a time per instance: indexing is CPU- and memory-heavy, and writes to one collection serialise anyway.</summary>
public sealed class IndexDatasetConsumerDefinition : ConsumerDefinition<IndexDatasetConsumer>
{
    public IndexDatasetConsumerDefinition() => ConcurrentMessageLimit = 1;
}

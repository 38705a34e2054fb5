using AspireTune.Contracts.Retrieval;
using AspireTune.Retrieval.Data;
using AspireTune.Retrieval.Apis;
using AspireTune.ServiceDefaults.Data;
using AspireTune.ServiceDefaults.Messaging;
using MassTransit;

namespace AspireTune.Retrieval.Consumers;

/// <summary>What the two indexing consumers share: the inbox on message id and request id, and the event they publish with the same save.</summary>
internal static class IndexingRequests
{
    /// <summary>A redelivery repeats the message id; a re-send by the workflow repeats the request id: either way it was done.</summary>
    public static async Task<bool> AlreadyDoneAsync(RetrievalDbContext db, ConsumeContext context, Guid requestId, string consumer) =>
        await db.AlreadyProcessedAsync(context.MessageId, consumer, context.CancellationToken)
        || await db.AlreadyProcessedAsync(requestId, consumer + ":request", context.CancellationToken);

    /// <summary>Records both ids, and the <c>CollectionIndexed</c> event (outbox), in the same save as the indexing itself.</summary>
    public static Action<RetrievalDbContext, IngestResult> MarkDoneAndAnnounce(ConsumeContext context, Guid requestId, string consumer, Guid? experimentId, CollectionRecord collection, int documents) => (db, result) =>
    {
        db.MarkProcessed(context.MessageId, consumer);
        db.MarkProcessed(requestId, consumer + ":request");
        db.PublishOnCommit(new CollectionIndexed
        {
            RequestId = requestId,
            ExperimentId = experimentId,
            Collection = collection.Name,
            Documents = documents,
            Points = result.Points,
            EmbeddingModel = collection.EmbeddingModel,
            Dimensions = collection.Dimensions,
            IndexedAt = DateTimeOffset.UtcNow,
        });
    };
}

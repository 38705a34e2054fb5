using AspireTune.Contracts.Retrieval;
using AspireTune.Retrieval.Data;
using AspireTune.ServiceDefaults.Data;
using MassTransit;

namespace AspireTune.Retrieval.Consumers;

/// <summary>What the two indexing consumers share: the inbox on message id and request id, and the event they publish.</summary>
internal static class IndexingRequests
{
    /// <summary>A redelivery repeats the message id; a re-send by the workflow repeats the request id: either way it was done.</summary>
    public static async Task<bool> AlreadyDoneAsync(RetrievalDbContext db, ConsumeContext context, Guid requestId, string consumer) =>
        await db.AlreadyProcessedAsync(context.MessageId, consumer, context.CancellationToken)
        || await db.AlreadyProcessedAsync(requestId, consumer + ":request", context.CancellationToken);

    /// <summary>Records both ids in the same save as the indexing itself.</summary>
    public static Action<RetrievalDbContext> MarkDone(ConsumeContext context, Guid requestId, string consumer) => db =>
    {
        db.MarkProcessed(context.MessageId, consumer);
        db.MarkProcessed(requestId, consumer + ":request");
    };

    public static Task PublishIndexedAsync(ConsumeContext context, Guid requestId, Guid? experimentId, CollectionRecord collection, int documents, long points) =>
        context.Publish(new CollectionIndexed
        {
            RequestId = requestId,
            ExperimentId = experimentId,
            Collection = collection.Name,
            Documents = documents,
            Points = points,
            EmbeddingModel = collection.EmbeddingModel,
            Dimensions = collection.Dimensions,
            IndexedAt = DateTimeOffset.UtcNow,
        }, context.CancellationToken);
}

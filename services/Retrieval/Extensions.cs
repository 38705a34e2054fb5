using AspireTune.Retrieval.Apis;
using AspireTune.Retrieval.Data;
using AspireTune.Retrieval.Embeddings;
using AspireTune.Retrieval.Index;
using AspireTune.Retrieval.Search;
using AspireTune.ServiceDefaults.Data;
using AspireTune.ServiceDefaults.Messaging;
using MassTransit;
using Microsoft.Extensions.Options;

namespace AspireTune.Retrieval;

public static class RetrievalExtensions
{
    /// <summary>Name of the connection string that points at Qdrant; without it the embedded index is used.</summary>
    public const string VectorDbConnectionName = "vectordb";

    /// <summary>Registers the Retrieval service: its database, options, vector index, embeddings, consumers and services.</summary>
    public static IHostApplicationBuilder AddRetrieval(this IHostApplicationBuilder builder)
    {
        builder.AddServiceDefaults();
        builder.AddServiceDatabase<RetrievalDbContext>(RetrievalDbContext.ConnectionName);
        builder.AddConsumers(bus => bus.AddConsumers(typeof(RetrievalExtensions).Assembly));

        builder.Services.AddOptions<RetrievalOptions>().BindConfiguration(RetrievalOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddOptions<EmbeddedIndexOptions>().BindConfiguration(EmbeddedIndexOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddOptions<HostedEmbeddingOptions>().BindConfiguration(HostedEmbeddingOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddOptions<QdrantOptions>().BindConfiguration(QdrantOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();

        // Qdrant.Client speaks gRPC: Aspire's Qdrant resource (and the AppHost's own) injects that endpoint as "vectordb".
        var qdrant = QdrantConnection.Parse(builder.Configuration.GetConnectionString(VectorDbConnectionName));
        if (qdrant is not null)
            builder.Services.AddSingleton<IVectorIndex>(sp => new QdrantVectorIndex(qdrant, sp.GetRequiredService<IOptions<QdrantOptions>>()));
        else
            builder.Services.AddSingleton<IVectorIndex, EmbeddedVectorIndex>();

        builder.Services.AddSingleton<EmbeddingService>();
        builder.Services.AddSingleton<KeywordIndexCache>();
        builder.Services.AddScoped<RetrievalService>();
        builder.Services.AddScoped<QueryRanker>();
        builder.Services.AddScoped<RetrievalQueries>();
        builder.Services.AddExceptionHandler<RetrievalExceptionHandler>();
        return builder;
    }

    /// <summary>Maps the Retrieval service's HTTP APIs.</summary>
    public static WebApplication MapRetrieval(this WebApplication app)
    {
        app.UseRetrievalUploadLimit();
        app.MapCollectionsApi();
        app.MapEmbeddingsApi();
        return app;
    }
}

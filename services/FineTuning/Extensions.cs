using AspireTune.FineTuning.Apis;
using AspireTune.FineTuning.Curation;
using AspireTune.FineTuning.Data;
using AspireTune.FineTuning.Jobs;
using AspireTune.FineTuning.Registry;
using AspireTune.FineTuning.Serving;
using AspireTune.FineTuning.Workers;
using AspireTune.ServiceDefaults.Data;
using AspireTune.ServiceDefaults.Messaging;
using AspireTune.ServiceDefaults.Work;
using MassTransit;
using Microsoft.Extensions.Options;

namespace AspireTune.FineTuning;

public static class FineTuningExtensions
{
    /// <summary>Registers the FineTuning service: its database, options, consumers, training worker, registry and model server.</summary>
    public static IHostApplicationBuilder AddFineTuning(this IHostApplicationBuilder builder)
    {
        builder.AddServiceDefaults();
        builder.AddServiceDatabase<FineTuningDbContext>(FineTuningDbContext.ConnectionName);
        builder.AddConsumers(bus => bus.AddConsumers(typeof(FineTuningExtensions).Assembly));

        builder.Services.AddOptions<FineTuningOptions>().BindConfiguration(FineTuningOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddOptions<CurationOptions>().BindConfiguration(CurationOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddOptions<BuiltInModelOptions>().BindConfiguration(BuiltInModelOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();

        builder.Services.AddSingleton<IModelRuntime, EngineRuntime>();
        builder.Services.AddSingleton<ITrainingBackend, EngineTrainingBackend>();
        builder.Services.AddSingleton<ModelRegistry>();
        builder.Services.AddSingleton<CheckpointModels>();
        builder.Services.AddSingleton<ModelHost>();
        builder.Services.AddSingleton<ServedEndpoint>();
        builder.Services.AddScoped<JobValidator>();
        builder.Services.AddHostedService<BuiltInModelSeeder>();
        builder.Services.AddWorkQueue<FineTuningDbContext, FineTuningJob>("fine-tuning", TrainingWorker.Definition, sp =>
        {
            var o = sp.GetRequiredService<IOptions<FineTuningOptions>>().Value;
            return new WorkQueueTiming(TimeSpan.FromSeconds(o.LeaseSeconds), TimeSpan.FromSeconds(o.HeartbeatSeconds), TimeSpan.FromMilliseconds(o.PollIntervalMs), MaxConcurrency: 1);
        });
        builder.Services.AddSingleton<TrainingInputs>();
        builder.Services.AddSingleton<JobOutcomes>();
        if (builder.Configuration.GetValue($"{FineTuningOptions.SectionName}:{nameof(FineTuningOptions.WorkerEnabled)}", true))
            builder.Services.AddHostedService<TrainingWorker>();
        return builder;
    }

    /// <summary>Maps the FineTuning service's HTTP APIs: files, jobs, the model registry and the OpenAI-compatible <c>/v1</c> (serving, files, fine-tuning jobs).</summary>
    public static WebApplication MapFineTuning(this WebApplication app)
    {
        app.MapFilesApi();
        app.MapJobsApi();
        app.MapRegistryApi();
        app.MapOpenAiApi();
        app.MapOpenAiFilesApi();
        app.MapOpenAiFineTuningApi();
        return app;
    }
}

using AspireTune.AppHost;

// The distributed topology, declared once. Infrastructure:Mode picks where the broker, the databases and the vector
// store come from (containers, local executables, or external servers); the services are wired the same way in all
// three, with the configuration keys infra/run-distributed.sh sets by hand.
var builder = DistributedApplication.CreateBuilder(args);
var infrastructure = Infrastructure.Add(builder);

// Services call each other with this key (ServiceDefaults/Security); operators use it too (reader, operator and admin).
var serviceKey = builder.AddParameter("service-account-key", new GenerateParameterDefault { MinLength = 32, Special = false }, secret: true, persist: true);
if (builder.ExecutionContext.IsPublishMode)
    builder.AddParameter(ServiceResources.KeyHashParameter, secret: true);
// Shared claim-check store: every service (and every replica) must see the same artifacts folder.
var data = Infrastructure.LocalDataPath(builder);
var artifacts = builder.AddParameter("artifacts-path", Path.Combine(data, "artifacts"));

var retrieval = builder.AddService<Projects.AspireTune_Retrieval>("retrieval", infrastructure, serviceKey, artifacts, data)
    .WithDatabase(infrastructure, "retrievaldb");
if (infrastructure.VectorDb is { } vectordb)
    retrieval.WithReference(vectordb).WaitFor(vectordb);

var fineTuning = builder.AddService<Projects.AspireTune_FineTuning>("finetuning", infrastructure, serviceKey, artifacts, data)
    .WithDatabase(infrastructure, "finetuningdb")
    .WithGpuSelection(builder)
    .WithUrlForEndpoint("http", url => new() { Url = "/api/fine-tuning/jobs", DisplayText = "Fine-tuning jobs" });

// Two replicas compete for run-evaluation on the broker; runs are claimed with a lease, so none runs twice.
var evaluation = builder.AddService<Projects.AspireTune_Evaluation>("evaluation", infrastructure, serviceKey, artifacts, data)
    .WithDatabase(infrastructure, "evaluationdb")
    .WithHostedModelKeys(builder)
    .WithReference(retrieval).WithReference(fineTuning)
    .WithReplicas(2);

builder.AddService<Projects.AspireTune_Comparison>("comparison", infrastructure, serviceKey, artifacts, data)
    .WithDatabase(infrastructure, "comparisondb")
    .WithReference(evaluation).WithReference(retrieval).WithReference(fineTuning)
    .WaitFor(evaluation).WaitFor(retrieval).WaitFor(fineTuning)
    .WithUrlForEndpoint("http", url => new() { Url = "/api/experiments/latest/report", DisplayText = "Latest report" })
    .WithSampleExperimentCommand(serviceKey)
    .WithExternalHttpEndpoints();

builder.Build().Run();

// The distributed topology, declared once: broker, databases and vector store as containers, the four
// services as projects wired to them with the same configuration keys infra/run-distributed.sh sets by hand.
var builder = DistributedApplication.CreateBuilder(args);

var messaging = builder.AddRabbitMQ("messaging").WithManagementPlugin().WithDataVolume();
var vectordb = builder.AddQdrant("vectordb").WithDataVolume();
var postgres = builder.AddPostgres("postgres").WithDataVolume();
var evaluationDb = postgres.AddDatabase("evaluationdb");
var retrievalDb = postgres.AddDatabase("retrievaldb");
var fineTuningDb = postgres.AddDatabase("finetuningdb");
var comparisonDb = postgres.AddDatabase("comparisondb");

// "Endpoint=https://...;Key=..." of the hosted foundation model; set it with
// `dotnet user-secrets set ConnectionStrings:openai "Endpoint=...;Key=..."` (never in a file under git).
var openai = builder.AddConnectionString("openai");
// Shared claim-check store: every service must see the same artifacts folder.
var artifacts = builder.AddParameter("artifacts-path", Path.Combine(builder.AppHostDirectory, "..", "data", "artifacts"));
// Which GPUs the fine-tuning worker may use (CUDA_VISIBLE_DEVICES); the worker runs on the host, where the driver is.
var gpus = builder.AddParameter("finetuning-gpus", "0");

var retrieval = builder.AddProject<Projects.AspireTune_Retrieval>("retrieval")
    .WithReference(messaging).WaitFor(messaging)
    .WithReference(retrievalDb).WaitFor(retrievalDb)
    .WithReference(vectordb).WaitFor(vectordb)
    .WithEnvironment("Artifacts__Path", artifacts)
    .WithHttpHealthCheck("/health");

var fineTuning = builder.AddProject<Projects.AspireTune_FineTuning>("finetuning")
    .WithReference(messaging).WaitFor(messaging)
    .WithReference(fineTuningDb).WaitFor(fineTuningDb)
    .WithEnvironment("Artifacts__Path", artifacts)
    .WithEnvironment("CUDA_VISIBLE_DEVICES", gpus)
    .WithEnvironment("FineTuning__Device", "cuda")
    .WithHttpHealthCheck("/health");

var evaluation = builder.AddProject<Projects.AspireTune_Evaluation>("evaluation")
    .WithReference(messaging).WaitFor(messaging)
    .WithReference(evaluationDb).WaitFor(evaluationDb)
    .WithReference(openai)
    .WithReference(retrieval).WithReference(fineTuning)
    .WithEnvironment("Artifacts__Path", artifacts)
    .WithHttpHealthCheck("/health");

builder.AddProject<Projects.AspireTune_Comparison>("comparison")
    .WithReference(messaging).WaitFor(messaging)
    .WithReference(comparisonDb).WaitFor(comparisonDb)
    .WithReference(evaluation).WithReference(retrieval).WithReference(fineTuning)
    .WithEnvironment("Artifacts__Path", artifacts)
    .WithHttpHealthCheck("/health")
    .WithExternalHttpEndpoints();

builder.Build().Run();

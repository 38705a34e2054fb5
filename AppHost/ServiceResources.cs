using System.Security.Cryptography;
using System.Text;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.Configuration;

namespace AspireTune.AppHost;

/// <summary>What every AspireTune service gets under the AppHost, so AppHost.cs reads as the topology.</summary>
public static class ServiceResources
{
    /// <summary>
    /// A service project: an HTTP endpoint (no launchSettings.json), the <c>/health</c> check, the broker, its data
    /// folder, the shared artifacts folder, the service account, and links to its API reference.
    /// </summary>
    public static IResourceBuilder<ProjectResource> AddService<TProject>(this IDistributedApplicationBuilder builder, string name,
        Infrastructure infrastructure, IResourceBuilder<ParameterResource> serviceKey, IResourceBuilder<ParameterResource> artifacts, string data)
        where TProject : IProjectMetadata, new() =>
        builder.AddProject<TProject>(name)
            .WithHttpEndpoint()
            .WithHttpHealthCheck("/health")
            .WithReference(infrastructure.Messaging).WaitFor(infrastructure.Messaging)
            .WithEnvironment(context =>
            {
                // A folder of this machine when run here; a deployment keeps each service's default (./data).
                if (context.ExecutionContext.IsRunMode)
                    context.EnvironmentVariables["ASPIRETUNE_DATA"] = Path.Combine(data, name);
            })
            .WithEnvironment("Artifacts__Path", artifacts)
            .WithServiceAccount(serviceKey)
            // Prompt and completion text on gen_ai spans: only when the AppHost is told so (and the services run in Development).
            .WithEnvironment("Telemetry__SensitiveData", builder.Configuration.GetValue<bool>("Telemetry:SensitiveData") ? "true" : "false")
            .WithUrlForEndpoint("http", url => url.DisplayLocation = UrlDisplayLocation.DetailsOnly)
            .WithUrlForEndpoint("http", url => new() { Url = "/scalar/v1", DisplayText = "API reference" })
            .WithUrlForEndpoint("http", url => new() { Url = "/openapi/v1.json", DisplayText = "OpenAPI document", DisplayLocation = UrlDisplayLocation.DetailsOnly });

    /// <summary>Name of the dashboard command that starts an experiment on the bundled sample.</summary>
    public const string SampleExperimentCommand = "run-sample-experiment";

    /// <summary>
    /// A dashboard command for operators: start an experiment (kNN and the served base model prompted) on the bundled
    /// SpamAssassin sample, a smoke test of the whole platform whose trace, logs and report then show in the dashboard.
    /// </summary>
    public static IResourceBuilder<ProjectResource> WithSampleExperimentCommand(this IResourceBuilder<ProjectResource> comparison, IResourceBuilder<ParameterResource> serviceKey)
    {
        var sample = Path.Combine(comparison.ApplicationBuilder.AppHostDirectory, "..", "samples", "spam-assassin", "spam.jsonl");
        return comparison.WithHttpCommand("/api/experiments", "Run sample experiment", commandName: SampleExperimentCommand, commandOptions: new HttpCommandOptions
        {
            Description = "Starts an experiment on samples/spam-assassin (kNN and prompted candidates).",
            IconName = "Play",
            IsHighlighted = true,
            PrepareRequest = async context =>
            {
                context.Request.Headers.Authorization = new("Bearer", await serviceKey.Resource.GetValueAsync(context.CancellationToken));
                context.Request.Content = System.Net.Http.Json.JsonContent.Create(new
                {
                    name = $"sample {DateTime.UtcNow:yyyy-MM-dd HH:mm}",
                    dataset = await File.ReadAllTextAsync(sample, context.CancellationToken),
                    candidates = new[] { "knn", "prompted" },
                });
            },
        });
    }

    /// <summary>The service's own database (<c>ConnectionStrings:&lt;name&gt;</c>), waited for.</summary>
    public static IResourceBuilder<ProjectResource> WithDatabase(this IResourceBuilder<ProjectResource> service, Infrastructure infrastructure, string database) =>
        service.WithReference(infrastructure.Databases[database]).WaitFor(infrastructure.Databases[database]);

    /// <summary>
    /// The service account: its key for calls to the other services, and the same key's SHA-256 as an account with the
    /// admin role (it registers the endpoints of trained models), so the services accept each other's calls.
    /// </summary>
    public static IResourceBuilder<ProjectResource> WithServiceAccount(this IResourceBuilder<ProjectResource> service, IResourceBuilder<ParameterResource> key) =>
        service
            .WithEnvironment("Authentication__ServiceAccountKey", key)
            .WithEnvironment("Authentication__ApiKeys__Accounts__0__Name", "aspiretune-services")
            .WithEnvironment("Authentication__ApiKeys__Accounts__0__Roles__0", "admin")
            .WithEnvironment(async context =>
            {
                // Published, the key is the deployment's own: its hash becomes an input (service-account-key-hash) too.
                if (context.ExecutionContext.IsPublishMode)
                {
                    context.EnvironmentVariables["Authentication__ApiKeys__Accounts__0__KeyHash"] =
                        service.ApplicationBuilder.Resources.OfType<ParameterResource>().Single(p => p.Name == KeyHashParameter);
                    return;
                }
                var value = await key.Resource.GetValueAsync(context.CancellationToken) ?? "";
                context.EnvironmentVariables["Authentication__ApiKeys__Accounts__0__KeyHash"] = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(value)));
            });

    /// <summary>Name of the parameter that holds the service account key's SHA-256 in a published deployment.</summary>
    public const string KeyHashParameter = "service-account-key-hash";

    /// <summary>
    /// Keys of hosted models, declared only when set: each <c>Parameters:model-key-&lt;name&gt;</c> in the AppHost's configuration
    /// (user secrets, environment) becomes a secret parameter passed as <c>Evaluation:Secrets:&lt;name&gt;</c>, the key an
    /// endpoint names in <c>apiKeySecret</c>.
    /// </summary>
    public static IResourceBuilder<ProjectResource> WithHostedModelKeys(this IResourceBuilder<ProjectResource> service, IDistributedApplicationBuilder builder)
    {
        const string prefix = "model-key-";
        foreach (var entry in builder.Configuration.GetSection("Parameters").GetChildren().Where(e => e.Key.StartsWith(prefix, StringComparison.Ordinal) && !string.IsNullOrEmpty(e.Value)))
            service.WithEnvironment($"Evaluation__Secrets__{entry.Key[prefix.Length..]}", builder.AddParameter(entry.Key, secret: true));
        return service;
    }

    /// <summary>
    /// Which GPUs the fine-tuning worker may use: <c>Parameters:finetuning-gpus</c> (e.g. <c>0</c> or <c>0,1</c>) becomes
    /// CUDA_VISIBLE_DEVICES; unset, the worker sees every GPU of the host (and trains on CPU where there is none).
    /// </summary>
    public static IResourceBuilder<ProjectResource> WithGpuSelection(this IResourceBuilder<ProjectResource> service, IDistributedApplicationBuilder builder) =>
        string.IsNullOrWhiteSpace(builder.Configuration["Parameters:finetuning-gpus"])
            ? service
            : service.WithEnvironment("CUDA_VISIBLE_DEVICES", builder.AddParameter("finetuning-gpus"));
}

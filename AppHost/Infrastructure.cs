using System.Diagnostics;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using RabbitMQ.Client;

namespace AspireTune.AppHost;

/// <summary>Where the broker, the databases and the vector store come from (<c>Infrastructure:Mode</c>).</summary>
public enum InfrastructureMode
{
    /// <summary>RabbitMQ, PostgreSQL and Qdrant as containers (needs Docker or Podman).</summary>
    Containers,

    /// <summary>Debian's RabbitMQ and PostgreSQL started by the AppHost as executables; the embedded vector index.</summary>
    Local,

    /// <summary>Connection strings to servers that already run.</summary>
    External,
}

/// <summary>The broker, one database per service, and the vector store when there is one: the same shape in every mode.</summary>
public sealed record Infrastructure(
    InfrastructureMode Mode,
    IResourceBuilder<IResourceWithConnectionString> Messaging,
    IReadOnlyDictionary<string, IResourceBuilder<IResourceWithConnectionString>> Databases,
    IResourceBuilder<IResourceWithConnectionString>? VectorDb)
{
    public const string SectionName = "Infrastructure";

    /// <summary>The database names: one per service, as each service reads <c>ConnectionStrings:&lt;service&gt;db</c>.</summary>
    public static readonly string[] DatabaseNames = ["evaluationdb", "retrievaldb", "finetuningdb", "comparisondb"];

    /// <summary>
    /// Declares the infrastructure of the configured mode. Unset, the mode is containers where a container runtime
    /// answers and local otherwise; containers asked for without a runtime stop the AppHost with one line saying how to switch.
    /// </summary>
    public static Infrastructure Add(IDistributedApplicationBuilder builder)
    {
        var section = builder.Configuration.GetSection(SectionName);
        var mode = ChooseMode(builder, section["Mode"]);
        return mode switch
        {
            InfrastructureMode.Containers => AddContainers(builder),
            InfrastructureMode.Local => AddLocal(builder, section),
            _ => AddExternal(builder),
        };
    }

    private static InfrastructureMode ChooseMode(IDistributedApplicationBuilder builder, string? configured)
    {
        if (!string.IsNullOrWhiteSpace(configured))
        {
            if (!Enum.TryParse<InfrastructureMode>(configured, ignoreCase: true, out var mode))
                throw new DistributedApplicationException($"Infrastructure:Mode is '{configured}': use containers, local or external.");
            if (mode == InfrastructureMode.Containers && builder.ExecutionContext.IsRunMode && ContainerRuntime.Probe() is { } problem)
                throw new DistributedApplicationException(
                    $"Infrastructure:Mode=containers but {problem}: start Docker or Podman, or run with --Infrastructure:Mode=local (Debian's RabbitMQ and PostgreSQL) or --Infrastructure:Mode=external (your own servers).");
            return mode;
        }
        // Publishing describes containers whatever this machine has.
        if (!builder.ExecutionContext.IsRunMode)
            return InfrastructureMode.Containers;
        return ContainerRuntime.Probe() is null ? InfrastructureMode.Containers : InfrastructureMode.Local;
    }

    private static Infrastructure AddContainers(IDistributedApplicationBuilder builder)
    {
        var messaging = builder.AddRabbitMQ("messaging").WithManagementPlugin().WithDataVolume();
        var postgres = builder.AddPostgres("postgres").WithDataVolume();
        var databases = DatabaseNames.ToDictionary(name => name, name => (IResourceBuilder<IResourceWithConnectionString>)postgres.AddDatabase(name));
        var qdrantKey = builder.AddParameter("vectordb-key", new GenerateParameterDefault { MinLength = 24, Special = false }, secret: true);
        var qdrant = builder.AddResource(new QdrantResource("vectordb", qdrantKey.Resource))
            .WithImage("qdrant/qdrant", "v1.16.3")
            .WithImageRegistry("docker.io")
            .WithHttpEndpoint(targetPort: 6333, name: QdrantResource.HttpEndpointName)
            .WithEndpoint(targetPort: 6334, name: QdrantResource.GrpcEndpointName, scheme: "http")
            .WithEnvironment("QDRANT__SERVICE__API_KEY", qdrantKey)
            .WithEnvironment("QDRANT__SERVICE__ENABLE_STATIC_CONTENT", "0")
            .WithVolume("aspiretune-qdrant-data", "/qdrant/storage")
            .WithHttpHealthCheck("/readyz", endpointName: QdrantResource.HttpEndpointName);
        return new(InfrastructureMode.Containers, messaging, databases, qdrant);
    }

    private static Infrastructure AddLocal(IDistributedApplicationBuilder builder, IConfigurationSection section)
    {
        var data = LocalDataPath(builder);
        var ports = section.GetSection("Ports");
        int Port(string name, int fallback) => ports.GetValue(name, fallback);
        var scripts = Path.Combine(builder.AppHostDirectory, "Local");

        var rabbitPassword = builder.AddParameter("messaging-password", new GenerateParameterDefault { MinLength = 24, Special = false }, secret: true, persist: true);
        var rabbit = new LocalRabbitMQResource("messaging", Path.Combine(scripts, "rabbitmq.sh"), scripts, rabbitPassword.Resource);
        var messaging = builder.AddResource(rabbit)
            .WithEndpoint(LocalRabbitMQResource.AmqpEndpointName, e => { e.Port = e.TargetPort = Port("Amqp", 5682); e.UriScheme = "amqp"; e.IsProxied = false; e.Transport = "tcp"; })
            .WithHttpEndpoint(port: Port("Management", 15682), name: LocalRabbitMQResource.ManagementEndpointName, isProxied: false)
            .WithEnvironment("LOCAL_DATA", Path.Combine(data, "rabbitmq"))
            .WithEnvironment("AMQP_PORT", Port("Amqp", 5682).ToString())
            .WithEnvironment("MANAGEMENT_PORT", Port("Management", 15682).ToString())
            .WithEnvironment("DIST_PORT", Port("RabbitMQDistribution", 25682).ToString())
            .WithEnvironment("EPMD_PORT", Port("Epmd", 4379).ToString())
            .WithEnvironment("RABBITMQ_USER", LocalRabbitMQResource.UserName)
            .WithEnvironment("RABBITMQ_PASSWORD", rabbitPassword)
            .WithUrlForEndpoint(LocalRabbitMQResource.ManagementEndpointName, u => u.DisplayText = "RabbitMQ management")
            .WithHealthCheck(AddRabbitMQHealthCheck(builder, rabbit));

        var postgresPassword = builder.AddParameter("postgres-password", new GenerateParameterDefault { MinLength = 24, Special = false }, secret: true);
        var postgresServer = new LocalPostgresResource("postgres", Path.Combine(scripts, "postgres.sh"), scripts, postgresPassword.Resource);
        var postgres = builder.AddResource(postgresServer)
            .WithEndpoint(LocalPostgresResource.TcpEndpointName, e => { e.Port = e.TargetPort = Port("Postgres", 5442); e.UriScheme = "tcp"; e.IsProxied = false; e.Transport = "tcp"; })
            .WithEnvironment("LOCAL_DATA", Path.Combine(data, "postgres"))
            .WithEnvironment("POSTGRES_PORT", Port("Postgres", 5442).ToString())
            .WithEnvironment("POSTGRES_PASSWORD", postgresPassword)
            .WithHealthCheck(AddPostgresHealthCheck(builder, postgresServer));
        var databases = DatabaseNames.ToDictionary(name => name, name =>
        {
            var database = new LocalDatabaseResource(name, postgresServer);
            return (IResourceBuilder<IResourceWithConnectionString>)builder.AddResource(database)
                .WithInitialState(new CustomResourceSnapshot { ResourceType = "PostgresDatabase", State = KnownResourceStates.NotStarted, Properties = [] })
                .WithHealthCheck(AddPostgresHealthCheck(builder, database));
        });
        // Aspire hands its state to the children of containers only: the databases of an executable server run once it is ready.
        postgres.OnResourceReady(async (server, ready, ct) =>
        {
            await CreateDatabasesAsync(server, ct);
            var notifications = ready.Services.GetRequiredService<ResourceNotificationService>();
            foreach (var database in databases.Values)
                await notifications.PublishUpdateAsync(database.Resource, s => s with { State = KnownResourceStates.Running, StartTimeStamp = DateTime.UtcNow });
        });
        return new(InfrastructureMode.Local, messaging, databases, VectorDb: null);
    }

    private static Infrastructure AddExternal(IDistributedApplicationBuilder builder)
    {
        // ConnectionStrings:messaging (amqp://...), ConnectionStrings:postgres (Host=...;Username=...;Password=...),
        // ConnectionStrings:vectordb (Endpoint=http://host:6334;Key=...) when there is a Qdrant.
        var messaging = builder.AddConnectionString("messaging");
        var postgres = builder.AddConnectionString("postgres");
        var databases = DatabaseNames.ToDictionary(name => name,
            name => (IResourceBuilder<IResourceWithConnectionString>)builder.AddConnectionString(name, ReferenceExpression.Create($"{postgres.Resource};Database={name}")));
        var vectordb = string.IsNullOrWhiteSpace(builder.Configuration.GetConnectionString("vectordb")) ? null : builder.AddConnectionString("vectordb");
        return new(InfrastructureMode.External, messaging, databases, vectordb);
    }

    /// <summary>The local mode's folder: servers' data, services' data and the shared artifacts. Default <c>data/aspire</c> in the repository.</summary>
    public static string LocalDataPath(IDistributedApplicationBuilder builder) =>
        Path.GetFullPath(builder.Configuration[$"{SectionName}:DataPath"] is { Length: > 0 } path
            ? path
            : Path.Combine(builder.AppHostDirectory, "..", "data", "aspire"));

    private static string AddRabbitMQHealthCheck(IDistributedApplicationBuilder builder, LocalRabbitMQResource rabbit)
    {
        var key = $"{rabbit.Name}_check";
        IConnection? connection = null;
        // Deferred until the check first runs, after the node has started; the connection is reused.
        builder.Services.AddHealthChecks().AddRabbitMQ(async _ => connection ??= await new ConnectionFactory
        {
            Uri = new Uri((await rabbit.ConnectionStringExpression.GetValueAsync(default))!),
        }.CreateConnectionAsync(), key);
        return key;
    }

    private static string AddPostgresHealthCheck(IDistributedApplicationBuilder builder, IResourceWithConnectionString postgres)
    {
        var key = $"{postgres.Name}_check";
        builder.Services.AddHealthChecks().AddAsyncCheck(key, async ct =>
        {
            try
            {
                await using var connection = new NpgsqlConnection(await postgres.ConnectionStringExpression.GetValueAsync(ct));
                await connection.OpenAsync(ct);
                return Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult.Healthy();
            }
            catch (Exception e) when (e is NpgsqlException or InvalidOperationException or System.Net.Sockets.SocketException)
            {
                return Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult.Unhealthy(e.Message);
            }
        });
        return key;
    }

    /// <summary>
    /// The databases are created once the server is ready, as Aspire's PostgreSQL resource does: the services' EF would
    /// create them too, but two replicas starting together would race.
    /// </summary>
    private static async Task CreateDatabasesAsync(LocalPostgresResource server, CancellationToken ct)
    {
        await using var connection = new NpgsqlConnection(await server.ConnectionStringExpression.GetValueAsync(ct));
        await connection.OpenAsync(ct);
        foreach (var name in DatabaseNames)
        {
            await using var exists = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = $1", connection) { Parameters = { new() { Value = name } } };
            if (await exists.ExecuteScalarAsync(ct) is not null)
                continue;
            // Names come from DatabaseNames, never from input.
            await using var create = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
            await create.ExecuteNonQueryAsync(ct);
        }
    }
}

/// <summary>Whether a container runtime answers: the one <c>ASPIRE_CONTAINER_RUNTIME</c> names, else docker, else podman.</summary>
internal static class ContainerRuntime
{
    /// <summary>Null when a runtime answers, else what is wrong, in a few words.</summary>
    public static string? Probe()
    {
        var configured = Environment.GetEnvironmentVariable("ASPIRE_CONTAINER_RUNTIME");
        string[] candidates = string.IsNullOrWhiteSpace(configured) ? ["docker", "podman"] : [configured];
        foreach (var runtime in candidates)
        {
            try
            {
                using var process = Process.Start(new ProcessStartInfo(runtime, "info --format {{.ServerVersion}}")
                {
                    RedirectStandardOutput = true,
                    RedirectStandardError = true,
                });
                if (process is null)
                    continue;
                if (!process.WaitForExit(TimeSpan.FromSeconds(15)))
                {
                    process.Kill(entireProcessTree: true);
                    continue;
                }
                if (process.ExitCode == 0)
                    return null;
            }
            catch (System.ComponentModel.Win32Exception)
            {
                // not installed
            }
        }
        return $"no container runtime answers ({string.Join(" or ", candidates)} info failed)";
    }
}

/// <summary>Debian's RabbitMQ run by <c>Local/rabbitmq.sh</c>: an executable that yields the same connection string as the container.</summary>
public sealed class LocalRabbitMQResource(string name, string command, string workingDirectory, ParameterResource password)
    : ExecutableResource(name, command, workingDirectory), IResourceWithConnectionString
{
    public const string AmqpEndpointName = "amqp";
    public const string ManagementEndpointName = "management";
    public const string UserName = "aspiretune";

    public EndpointReference Amqp => new(this, AmqpEndpointName);

    public ReferenceExpression ConnectionStringExpression => ReferenceExpression.Create(
        $"amqp://{UserName}:{password}@{Amqp.Property(EndpointProperty.Host)}:{Amqp.Property(EndpointProperty.Port)}/");
}

/// <summary>Debian's PostgreSQL run by <c>Local/postgres.sh</c>.</summary>
public sealed class LocalPostgresResource(string name, string command, string workingDirectory, ParameterResource password)
    : ExecutableResource(name, command, workingDirectory), IResourceWithConnectionString
{
    public const string TcpEndpointName = "tcp";

    public EndpointReference Tcp => new(this, TcpEndpointName);

    public ReferenceExpression ConnectionStringExpression => ReferenceExpression.Create(
        $"Host={Tcp.Property(EndpointProperty.Host)};Port={Tcp.Property(EndpointProperty.Port)};Username=postgres;Password={password}");
}

/// <summary>One service's database on the local PostgreSQL: a child resource, healthy when its server is.</summary>
public sealed class LocalDatabaseResource(string name, LocalPostgresResource parent)
    : Resource(name), IResourceWithParent<LocalPostgresResource>, IResourceWithConnectionString
{
    public LocalPostgresResource Parent { get; } = parent;

    public ReferenceExpression ConnectionStringExpression => ReferenceExpression.Create($"{Parent};Database={Name}");
}

/// <summary>Qdrant as a container of our own (no hosting package for it is served): the connection string Aspire's Qdrant yields.</summary>
public sealed class QdrantResource(string name, ParameterResource apiKey) : ContainerResource(name), IResourceWithConnectionString
{
    public const string GrpcEndpointName = "grpc";
    public const string HttpEndpointName = "http";

    public ParameterResource ApiKey { get; } = apiKey;

    public ReferenceExpression ConnectionStringExpression => ReferenceExpression.Create(
        $"Endpoint={new EndpointReference(this, GrpcEndpointName).Property(EndpointProperty.Url)};Key={ApiKey}");
}

using System.Diagnostics;
using System.Text;
using AspireTune.Contracts.Common;
using AspireTune.Contracts.Retrieval;
using AspireTune.ServiceDefaults.Artifacts;
using AspireTune.TestSupport;
using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Trace;

namespace AspireTune.Platform.Tests;

/// <summary>A real service host (its own Program) configured like a deployment, for cross-service tests.</summary>
internal sealed class ServiceHost<TProgram>(IReadOnlyDictionary<string, string?> settings, ICollection<Activity>? activities = null)
    : WebApplicationFactory<TProgram> where TProgram : class
{
    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Production");
        builder.UseContentRoot(AppContext.BaseDirectory);
        foreach (var (key, value) in settings)
            builder.UseSetting(key, value);
        if (activities is not null)
            builder.ConfigureTestServices(s => s.ConfigureOpenTelemetryTracerProvider(t => t.AddInMemoryExporter(activities)));
    }
}

/// <summary>
/// Two services as separate hosts on the real broker: a command sent from the Comparison host is consumed by
/// the Retrieval host, whose reply event comes back, all in one distributed trace.
/// </summary>
public sealed class CrossServiceMessagingTests
{
    private static async Task<ArtifactRef> PutDatasetAsync(string artifactsPath)
    {
        var jsonl = string.Join('\n', Enumerable.Range(0, 12).Select(i =>
            $$"""{"input":"message {{i}} {{(i % 2 == 0 ? "win a free prize now" : "lunch at noon with the team")}}","expected":"{{(i % 2 == 0 ? "spam" : "ham")}}"}"""));
        return await new DirectoryArtifactStore(artifactsPath).PutAsync(new MemoryStream(Encoding.UTF8.GetBytes(jsonl)), "datasets", "train.jsonl", "application/jsonl", TestContext.Current.CancellationToken);
    }

    [Fact]
    public async Task IndexDataset_SentFromComparisonHost_IsConsumedByRetrievalHost_AndReplyReturnsInOneTrace()
    {
        var ct = TestContext.Current.CancellationToken;
        var artifactsPath = TestInfrastructure.TempDataFolder("artifacts");
        // One list per host: each host's export processor is serialised, two hosts are not with each other.
        List<Activity> retrievalActivities = [], comparisonActivities = [];
        Dictionary<string, string?> Settings(string service) => new()
        {
            ["ConnectionStrings:messaging"] = TestInfrastructure.RabbitMq,
            [$"ConnectionStrings:{service}db"] = TestInfrastructure.PostgresDatabase($"at_{service}"),
            ["ASPIRETUNE_DATA"] = TestInfrastructure.TempDataFolder(service),
            ["Artifacts:Path"] = artifactsPath,
        };
        await using var retrieval = new ServiceHost<AspireTune.Retrieval.Program>(Settings("retrieval"), retrievalActivities);
        await using var comparison = new ServiceHost<AspireTune.Comparison.Program>(Settings("comparison"), comparisonActivities);
        _ = retrieval.Server;
        _ = comparison.Server;

        await ExchangeAsync(comparison.Services.GetRequiredService<IBus>(), artifactsPath, () => retrievalActivities.Concat(comparisonActivities).ToList());
    }

    [Fact]
    public async Task IndexDataset_InEmbeddedHost_OnInMemoryTransport_RepliesInOneTrace()
    {
        var data = TestInfrastructure.TempDataFolder("embedded-x");
        List<Activity> activities = [];
        var app = Cli.EmbeddedHost.Build([$"--ASPIRETUNE_DATA={data}", "--urls=http://127.0.0.1:0"],
            b => b.Services.ConfigureOpenTelemetryTracerProvider(t => t.AddInMemoryExporter(activities)));
        await app.StartAsync(TestContext.Current.CancellationToken);
        await using var _ = app;

        await ExchangeAsync(app.Services.GetRequiredService<IBus>(), Path.Combine(data, "artifacts"), () => activities.ToList());
    }

    /// <summary>Sends IndexDataset twice with one message id, expects one reply, all spans in one trace.</summary>
    private static async Task ExchangeAsync(IBus bus, string artifactsPath, Func<List<Activity>> exported)
    {
        var ct = TestContext.Current.CancellationToken;
        var replies = new Received<CollectionIndexed>();
        var handle = bus.ConnectReceiveEndpoint(new TemporaryEndpointDefinition(), KebabCaseEndpointNameFormatter.Instance,
            e => e.Handler<CollectionIndexed>(c => { replies.Add(c.Message); return Task.CompletedTask; }));
        await handle.Ready;
        try
        {
            var requestId = Guid.NewGuid();
            var messageId = Guid.NewGuid();
            var command = new IndexDataset { RequestId = requestId, Collection = $"xservice-{requestId:N}"[..30], Dataset = await PutDatasetAsync(artifactsPath) };
            using (var root = new ActivitySource("AspireTune.Platform.Tests").StartActivity("test-request"))
            {
                var endpoint = await bus.GetSendEndpoint(new Uri("queue:index-dataset"));
                await endpoint.Send(command, c => c.MessageId = messageId, ct);
                // The broker may deliver twice: the same message id again must have no second effect.
                await endpoint.Send(command, c => c.MessageId = messageId, ct);
            }

            var reply = await replies.WaitAsync(r => r.RequestId == requestId, TimeSpan.FromSeconds(60));
            reply.Documents.Should().Be(12);
            reply.Points.Should().Be(12);

            await Task.Delay(TimeSpan.FromSeconds(2), ct);
            replies.Items.Count(r => r.RequestId == requestId).Should().Be(1);

            var traced = exported().Where(a => a.Source.Name == "MassTransit").ToList();
            var consumes = traced.Where(a => a.Kind == ActivityKind.Consumer && a.DisplayName.StartsWith("index-dataset", StringComparison.Ordinal)).ToList();
            consumes.Should().NotBeEmpty();
            var traceId = consumes[0].TraceId;
            traced.Where(a => a.TraceId == traceId).Select(a => a.Kind).Should().Contain([ActivityKind.Producer, ActivityKind.Consumer]);
            traced.Where(a => a.TraceId == traceId).Should().Contain(a => a.Kind == ActivityKind.Consumer && a.DisplayName.Contains("CollectionIndexed", StringComparison.OrdinalIgnoreCase) || a.Tags.Any(t => (t.Value ?? "").Contains("CollectionIndexed")));
        }
        finally
        {
            await handle.StopAsync(ct);
        }
    }
}

using System.Collections.Concurrent;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace AspireTune.AppHost.Tests;

/// <summary>
/// An OTLP/HTTP receiver on 127.0.0.1 (<c>POST /v1/traces</c>, <c>/v1/logs</c>, <c>/v1/metrics</c>, protobuf), standing where
/// the dashboard's collector stands: it records what the test checks of the spans, log records and metrics the services export.
/// </summary>
public sealed class OtlpReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;

    private OtlpReceiver(WebApplication app) => _app = app;

    public ConcurrentBag<ReceivedSpan> Spans { get; } = [];
    public ConcurrentBag<ReceivedLog> Logs { get; } = [];
    public ConcurrentBag<ReceivedMetric> Metrics { get; } = [];

    public string Endpoint => _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();

    public static async Task<OtlpReceiver> StartAsync(CancellationToken ct)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var receiver = new OtlpReceiver(app);
        app.MapPost("/v1/{signal}", async (string signal, HttpRequest request) =>
        {
            using var body = new MemoryStream();
            await request.Body.CopyToAsync(body);
            var message = body.ToArray();
            switch (signal)
            {
                case "traces": foreach (var span in Otlp.ReadSpans(message)) receiver.Spans.Add(span); break;
                case "logs": foreach (var log in Otlp.ReadLogs(message)) receiver.Logs.Add(log); break;
                case "metrics": foreach (var metric in Otlp.ReadMetrics(message)) receiver.Metrics.Add(metric); break;
            }
            // An empty Export*ServiceResponse: everything accepted.
            return Results.Bytes([], "application/x-protobuf");
        });
        await app.StartAsync(ct);
        return receiver;
    }

    public ValueTask DisposeAsync() => _app.DisposeAsync();
}

public sealed record ReceivedSpan(string Service, string TraceId, string Name, string Scope, IReadOnlySet<string> AttributeKeys, IReadOnlyList<string> EventNames);

public sealed record ReceivedLog(string Service, string Body, IReadOnlyDictionary<string, string> Attributes);

public sealed record ReceivedMetric(string Service, string Name);

/// <summary>
/// Reads, by field number, the parts of the OTLP export requests (opentelemetry/proto/collector/*/v1) the test needs. Each is
/// resource_x(1) { resource(1) { attributes(1) }, scope_x(2) { scope(1) { name(1) }, items(2) } }, and KeyValue is
/// { key(1), value(2) { string_value(1) } }. Span: trace_id(1), name(5), attributes(9), events(11) { name(2) }.
/// LogRecord: body(5), attributes(6). Metric: name(1).
/// </summary>
internal static class Otlp
{
    public static IEnumerable<ReceivedSpan> ReadSpans(byte[] message) =>
        Items(message).Select(i => new ReceivedSpan(i.Service, Convert.ToHexStringLower(Fields(i.Item, 1).FirstOrDefault() ?? []), Text(i.Item, 5) ?? "", i.Scope,
            Fields(i.Item, 9).Select(a => Text(a, 1) ?? "").ToHashSet(), Fields(i.Item, 11).Select(e => Text(e, 2) ?? "").ToList()));

    public static IEnumerable<ReceivedLog> ReadLogs(byte[] message) =>
        Items(message).Select(i => new ReceivedLog(i.Service, Fields(i.Item, 5).Select(v => Text(v, 1)).FirstOrDefault() ?? "", Attributes(i.Item, 6)));

    public static IEnumerable<ReceivedMetric> ReadMetrics(byte[] message) =>
        Items(message).Select(i => new ReceivedMetric(i.Service, Text(i.Item, 1) ?? ""));

    private static IEnumerable<(string Service, string Scope, byte[] Item)> Items(byte[] message)
    {
        foreach (var resourceItems in Fields(message, 1))
        {
            var service = Fields(resourceItems, 1).Select(r => Attributes(r, 1).GetValueOrDefault("service.name")).FirstOrDefault() ?? "";
            foreach (var scopeItems in Fields(resourceItems, 2))
            {
                var scope = Fields(scopeItems, 1).Select(s => Text(s, 1)).FirstOrDefault() ?? "";
                foreach (var item in Fields(scopeItems, 2))
                    yield return (service, scope, item);
            }
        }
    }

    /// <summary>String-valued attributes (others are left out: the test reads names and ids).</summary>
    private static Dictionary<string, string> Attributes(byte[] message, int field)
    {
        var attributes = new Dictionary<string, string>();
        foreach (var attribute in Fields(message, field))
            if (Text(attribute, 1) is { } key && Fields(attribute, 2).Select(v => Text(v, 1)).FirstOrDefault() is { } value)
                attributes[key] = value;
        return attributes;
    }

    private static string? Text(byte[] message, int field) =>
        Fields(message, field).Select(b => System.Text.Encoding.UTF8.GetString(b)).FirstOrDefault();

    /// <summary>The payloads of every length-delimited occurrence of <paramref name="field"/>; other fields skipped.</summary>
    private static List<byte[]> Fields(byte[] message, int field)
    {
        var found = new List<byte[]>();
        var input = new CodedInputStream(message);
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (WireFormat.GetTagFieldNumber(tag) == field && WireFormat.GetTagWireType(tag) == WireFormat.WireType.LengthDelimited)
                found.Add(input.ReadBytes().ToByteArray());
            else
                input.SkipLastField();
        }
        return found;
    }
}

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
/// An OTLP/HTTP trace receiver on 127.0.0.1 (<c>POST /v1/traces</c>, protobuf), standing where the dashboard's collector
/// stands: it records, for every span the services export, the trace id, the span name and the exporting service.
/// </summary>
public sealed class OtlpTraceReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;

    private OtlpTraceReceiver(WebApplication app) => _app = app;

    public ConcurrentBag<ReceivedSpan> Spans { get; } = [];

    public string Endpoint => _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();

    public static async Task<OtlpTraceReceiver> StartAsync(CancellationToken ct)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var receiver = new OtlpTraceReceiver(app);
        app.MapPost("/v1/traces", async (HttpRequest request) =>
        {
            using var body = new MemoryStream();
            await request.Body.CopyToAsync(body);
            foreach (var span in ExportTraceServiceRequest.Read(body.ToArray()))
                receiver.Spans.Add(span);
            // An empty ExportTraceServiceResponse: everything accepted.
            return Results.Bytes([], "application/x-protobuf");
        });
        app.MapPost("/v1/{signal}", () => Results.Bytes([], "application/x-protobuf")); // metrics and logs: accepted, not kept
        await app.StartAsync(ct);
        return receiver;
    }

    public ValueTask DisposeAsync() => _app.DisposeAsync();
}

public sealed record ReceivedSpan(string Service, string TraceId, string Name, string Scope);

/// <summary>
/// Reads the fields of opentelemetry/proto/collector/trace/v1 ExportTraceServiceRequest the test needs, by field number:
/// resource_spans(1) { resource(1) { attributes(1) { key(1), value(2) { string_value(1) } } }, scope_spans(2) { scope(1) { name(1) }, spans(2) { trace_id(1), name(5) } } }.
/// </summary>
internal static class ExportTraceServiceRequest
{
    public static IEnumerable<ReceivedSpan> Read(byte[] message)
    {
        var spans = new List<ReceivedSpan>();
        foreach (var resourceSpans in Fields(message, 1))
        {
            var service = "";
            foreach (var resource in Fields(resourceSpans, 1))
                foreach (var attribute in Fields(resource, 1))
                    if (Text(attribute, 1) == "service.name")
                        service = Fields(attribute, 2).Select(v => Text(v, 1)).FirstOrDefault() ?? "";
            foreach (var scopeSpans in Fields(resourceSpans, 2))
            {
                var scope = Fields(scopeSpans, 1).Select(s => Text(s, 1)).FirstOrDefault() ?? "";
                foreach (var span in Fields(scopeSpans, 2))
                    spans.Add(new(service, Convert.ToHexStringLower(Fields(span, 1).FirstOrDefault() ?? []), Text(span, 5) ?? "", scope));
            }
        }
        return spans;
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

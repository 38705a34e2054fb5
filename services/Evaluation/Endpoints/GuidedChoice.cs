using System.Net.Http.Json;
using System.Text.Json.Nodes;

namespace AspireTune.Evaluation.Endpoints;

/// <summary>
/// Adds <c>guided_choice</c> to the chat request of the call in progress: Semantic Kernel's OpenAI connector has no
/// setting for a server's extension parameters, so the gateway names the choices for its call (flowing with the async
/// call into the HTTP pipeline) and this handler writes them into the request body it sends.
/// </summary>
public sealed class GuidedChoice : DelegatingHandler
{
    private static readonly AsyncLocal<IReadOnlyList<string>?> Current = new();

    /// <summary>The choices for the calls made until the result is disposed; null changes nothing.</summary>
    public static IDisposable For(IReadOnlyList<string>? choices)
    {
        var previous = Current.Value;
        Current.Value = choices;
        return new Restore(previous);
    }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
    {
        if (Current.Value is { Count: > 0 } choices && request.Method == HttpMethod.Post && request.Content is { } content
            && request.RequestUri?.AbsolutePath.EndsWith("/chat/completions", StringComparison.Ordinal) == true
            && await content.ReadFromJsonAsync<JsonObject>(ct) is { } body)
        {
            body["guided_choice"] = new JsonArray(choices.Select(c => (JsonNode)c).ToArray());
            request.Content = JsonContent.Create(body);
        }
        return await base.SendAsync(request, ct);
    }

    private sealed class Restore(IReadOnlyList<string>? previous) : IDisposable
    {
        public void Dispose() => Current.Value = previous;
    }
}

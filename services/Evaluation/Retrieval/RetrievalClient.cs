using System.Net.Http.Json;
using System.Text.Json;
using AspireTune.Evaluation.Prompts;

namespace AspireTune.Evaluation.Retrieval;

/// <summary>A neighbor as the Retrieval service returns it.</summary>
public sealed record Neighbor(string Id, double Score, string Text, string? Label, JsonElement? Metadata);

/// <summary>The Retrieval service's answer to a neighbors query.</summary>
public sealed record NeighborsResponse(string Collection, IReadOnlyList<Neighbor> Neighbors);

/// <summary>What a prompt gets from retrieval: labelled neighbors as examples, all neighbors' text as context.</summary>
public sealed record RetrievedContext(IReadOnlyList<PromptExample> Examples, IReadOnlyList<string> Passages);

/// <summary>A retrieval call failed; the message is for the user.</summary>
public sealed class RetrievalException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Calls the Retrieval service: <c>POST {Evaluation:RetrievalBaseUrl}/api/retrieval/collections/{collection}/neighbors</c>
/// with <c>{"text", "k"}</c>.
/// </summary>
public sealed class RetrievalClient(HttpClient http)
{
    public async Task<RetrievedContext> NeighborsAsync(string collection, string text, int k, CancellationToken ct)
    {
        HttpResponseMessage response;
        try
        {
            response = await http.PostAsJsonAsync($"api/retrieval/collections/{Uri.EscapeDataString(collection)}/neighbors", new { text, k }, ct);
        }
        catch (HttpRequestException e)
        {
            throw new RetrievalException($"Retrieval service could not be reached: {e.Message}", e);
        }
        catch (Exception e) when (e is TimeoutException or Polly.Timeout.TimeoutRejectedException or Polly.CircuitBreaker.BrokenCircuitException)
        {
            throw new RetrievalException($"Retrieval service did not answer: {e.Message}", e);
        }
        using (response)
        {
            if (!response.IsSuccessStatusCode)
                throw new RetrievalException($"Retrieval of collection '{collection}' answered HTTP {(int)response.StatusCode} {response.StatusCode}.");
            NeighborsResponse? body;
            try
            {
                body = await response.Content.ReadFromJsonAsync<NeighborsResponse>(JsonSerializerOptions.Web, ct);
            }
            catch (JsonException e)
            {
                throw new RetrievalException($"Retrieval of collection '{collection}' answered with an unreadable body: {e.Message}", e);
            }
            var neighbors = body?.Neighbors ?? [];
            return new RetrievedContext(
                neighbors.Where(n => n.Label is not null).Select(n => new PromptExample(n.Text, n.Label)).ToList(),
                neighbors.Select(n => n.Text).ToList());
        }
    }
}

using System.Net.Http.Json;
using System.Text.Json;
using AspireTune.Contracts.Common;
using AspireTune.Contracts.Retrieval;
using AspireTune.Evaluation.Prompts;

namespace AspireTune.Evaluation.Retrieval;

/// <summary>What a prompt gets from retrieval: labelled neighbors as examples, all neighbors' text as context.</summary>
public sealed record RetrievedContext(IReadOnlyList<PromptExample> Examples, IReadOnlyList<string> Passages);

/// <summary>A retrieval call failed; the message is for the user.</summary>
public sealed class RetrievalException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Calls the Retrieval service: <c>POST {Evaluation:RetrievalBaseUrl}/api/retrieval/collections/{collection}/neighbors</c>
/// with a <see cref="NeighborsRequest"/>.
/// </summary>
public sealed class RetrievalClient(HttpClient http)
{
    public async Task<RetrievedContext> NeighborsAsync(string collection, string text, int k, CancellationToken ct)
    {
        HttpResponseMessage response;
        try
        {
            response = await http.PostAsJsonAsync($"api/retrieval/collections/{Uri.EscapeDataString(collection)}/neighbors", new NeighborsRequest { Text = text, K = k }, ContractJson.Options, ct);
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
                body = await response.Content.ReadFromJsonAsync<NeighborsResponse>(ContractJson.Options, ct);
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

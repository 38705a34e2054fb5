using System.Text.Json;
using System.Text.Json.Serialization;

namespace AspireTune.Contracts.Evaluation;

// The Evaluation service's HTTP shapes that other services call (Comparison registers endpoints and prompts).
// Members the service validates itself are optional here, so a missing one is answered with a ProblemDetails
// naming it rather than a bare 400 from the deserializer.

/// <summary>Where a model endpoint lives and what protocol it speaks.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<EndpointKind>))]
public enum EndpointKind
{
    /// <summary>api.openai.com (or the base URL given).</summary>
    OpenAI,

    /// <summary>Azure OpenAI's OpenAI-compatible v1 API (<c>https://&lt;resource&gt;.openai.azure.com/openai/v1</c>); the key goes in <c>api-key</c>.</summary>
    AzureOpenAI,

    /// <summary>Any OpenAI-compatible <c>/v1</c> URL, AspireTune's own model server included.</summary>
    OpenAICompatible,
}

/// <summary>
/// <c>PUT /api/evaluation/models/{id}</c> and <c>POST /api/evaluation/models</c>: a model endpoint. The key is
/// never sent: only the name of the configuration key that holds it.
/// </summary>
public sealed record ModelEndpointRequest
{
    /// <summary>Id used by runs, e.g. <c>gpt-4o-mini</c> (letters, digits, <c>.</c>, <c>_</c>, <c>-</c>); on PUT, default the id in the URL.</summary>
    public string Id { get; init; } = "";

    /// <summary>Protocol; default <see cref="EndpointKind.OpenAICompatible"/>.</summary>
    public EndpointKind Kind { get; init; } = EndpointKind.OpenAICompatible;

    /// <summary>Base URL of the OpenAI API (ending in <c>/v1</c> for most servers); default api.openai.com for kind OpenAI.</summary>
    public string? BaseUrl { get; init; }

    /// <summary>Model or deployment id sent in requests.</summary>
    public string Model { get; init; } = "";

    /// <summary>Configuration key holding the API key, e.g. <c>Evaluation:Secrets:openai</c>.</summary>
    public string? ApiKeySecret { get; init; }

    /// <summary>USD per million input tokens.</summary>
    public double InputPricePerMillion { get; init; }

    /// <summary>USD per million output tokens.</summary>
    public double OutputPricePerMillion { get; init; }

    /// <summary>Calls in flight at most (all runs together). Default 4.</summary>
    public int MaxConcurrency { get; init; } = 4;

    /// <summary>Requests per minute at most; unlimited when null.</summary>
    public int? RequestsPerMinute { get; init; }

    /// <summary>Context window in tokens; when null, the served model's (asked through its tokenize route), else a known default for the model family, else 8,192.</summary>
    public int? ContextLength { get; init; }

    /// <summary>Any other member; the service refuses one that looks like a raw key.</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Extra { get; init; }
}

/// <summary>A model endpoint as the API returns it: the key's configuration name and whether it is set, never the key.</summary>
public sealed record ModelEndpointResponse
{
    /// <summary>Endpoint id.</summary>
    public required string Id { get; init; }

    /// <summary>Protocol.</summary>
    public required EndpointKind Kind { get; init; }

    /// <summary>Base URL of the OpenAI API.</summary>
    public required string BaseUrl { get; init; }

    /// <summary>Model or deployment id sent in requests.</summary>
    public required string Model { get; init; }

    /// <summary>Name of the configuration key that holds the API key.</summary>
    public string? ApiKeySecret { get; init; }

    /// <summary>Whether that configuration key has a value here.</summary>
    public required bool ApiKeyConfigured { get; init; }

    /// <summary>USD per million input tokens.</summary>
    public required double InputPricePerMillion { get; init; }

    /// <summary>USD per million output tokens.</summary>
    public required double OutputPricePerMillion { get; init; }

    /// <summary>Calls in flight at most.</summary>
    public required int MaxConcurrency { get; init; }

    /// <summary>Requests per minute at most; unlimited when null.</summary>
    public int? RequestsPerMinute { get; init; }

    /// <summary>When the endpoint was registered.</summary>
    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>When it last changed.</summary>
    public required DateTimeOffset UpdatedAt { get; init; }

    /// <summary>Context window in tokens as registered; null: the served model's, or a known default.</summary>
    public int? ContextLength { get; init; }
}

/// <summary>
/// <c>POST /api/evaluation/prompts</c>: a new version of a named prompt (Semantic Kernel template syntax:
/// <c>{{$input}}</c>, <c>{{$examples}}</c>, <c>{{$context}}</c>). Posting a name again creates the next version.
/// </summary>
public sealed record PromptVersionRequest
{
    /// <summary>1-128 letters, digits, <c>.</c>, <c>_</c> or <c>-</c>.</summary>
    public string? Name { get; init; }

    /// <summary>The user message template.</summary>
    public string? Template { get; init; }

    /// <summary>The system message template, if any.</summary>
    public string? System { get; init; }

    /// <summary>Free text for people.</summary>
    public string? Description { get; init; }

    /// <summary>Labels (e.g. <c>production</c>) to point at the new version.</summary>
    public IReadOnlyList<string>? Labels { get; init; }
}

/// <summary>A prompt version as the API returns it.</summary>
public sealed record PromptVersionResponse
{
    /// <summary>The prompt's name.</summary>
    public required string Name { get; init; }

    /// <summary>1-based version number.</summary>
    public required int Version { get; init; }

    /// <summary><c>name@version</c>, as runs reference it.</summary>
    public required string Ref { get; init; }

    /// <summary>The user message template.</summary>
    public required string Template { get; init; }

    /// <summary>The system message template, if any.</summary>
    public string? System { get; init; }

    /// <summary>Free text for people.</summary>
    public string? Description { get; init; }

    /// <summary>Labels that point at this version.</summary>
    public required IReadOnlyList<string> Labels { get; init; }

    /// <summary>When the version was created.</summary>
    public required DateTimeOffset CreatedAt { get; init; }
}

namespace AspireTune.MockOpenAI;

/// <summary>
/// How the mock answers (section <c>MockOpenAI</c> when run as an exe). Everything is deterministic so a
/// test knows the expected output from its own configuration.
/// </summary>
public sealed class MockOpenAIOptions
{
    public const string SectionName = "MockOpenAI";

    /// <summary>When set, requests must carry <c>Authorization: Bearer &lt;key&gt;</c> (or <c>api-key</c>) with this key, else 401.</summary>
    public string? ApiKey { get; set; }

    /// <summary>Latency added to every answer, in milliseconds. Default 0.</summary>
    public int LatencyMs { get; set; }

    /// <summary>Rules tried in order against the last user message; the first whose regex matches gives the reply.</summary>
    public List<MockRule> Rules { get; set; } = [];

    /// <summary>
    /// What to answer when no rule matches: <c>echo</c> (the last user message, the default) or a fixed text.
    /// </summary>
    public string Fallback { get; set; } = "echo";

    /// <summary>
    /// When set, the mock also scores text the way evaluation harnesses ask servers to: <c>POST /v1/tokenize</c>
    /// (one token per UTF-8 byte) and <c>/v1/completions</c> with <c>echo</c> and <c>max_tokens: 0</c>. Unset: both
    /// answer 404, like a hosted API without them.
    /// </summary>
    public MockScoring? Scoring { get; set; }

    /// <summary>Behaviour per model name (faults, latency); models not listed answer normally.</summary>
    public Dictionary<string, MockModelBehavior> Models { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>Log-probabilities for scored text: every token of a prompt gets the value of the first rule matching its whole text.</summary>
public sealed class MockScoring
{
    /// <summary>Context length reported by the tokenize route. Default 4096.</summary>
    public int ContextLength { get; set; } = 4096;

    /// <summary>Rules tried in order against the decoded prompt text (the context followed by the scored continuation).</summary>
    public List<MockLogprobRule> Rules { get; set; } = [];

    /// <summary>Logprob per token when no rule matches. Default -3.</summary>
    public double DefaultLogprob { get; set; } = -3;
}

/// <summary>A logprob per token for prompts whose text matches the regex (case-insensitive).</summary>
public sealed class MockLogprobRule
{
    public string Pattern { get; set; } = "";
    public double Logprob { get; set; }
}

/// <summary>A reply chosen by a regular expression over the last user message.</summary>
public sealed class MockRule
{
    /// <summary>.NET regular expression (case-insensitive).</summary>
    public string Pattern { get; set; } = "";

    /// <summary>The reply; <c>$1</c>-style group references are expanded.</summary>
    public string Reply { get; set; } = "";
}

/// <summary>
/// Fault injection for one model name. The same settings can be sent per request in the
/// <c>X-Mock-Behavior</c> header, e.g. <c>latency=50,status=500,garbage,hang,failfirst=2,retryafter=1</c>.
/// </summary>
public sealed class MockModelBehavior
{
    /// <summary>Latency for this model in milliseconds (replaces the global latency when set).</summary>
    public int? LatencyMs { get; set; }

    /// <summary>Answer every request with this HTTP status (429, 500, ...) instead of a completion.</summary>
    public int? Status { get; set; }

    /// <summary>Fail only the first N requests of each distinct prompt with <see cref="FailStatus"/>, then answer.</summary>
    public int FailFirst { get; set; }

    /// <summary>Status used by <see cref="FailFirst"/>. Default 429.</summary>
    public int FailStatus { get; set; } = 429;

    /// <summary>Seconds sent in <c>Retry-After</c> with 429/503 answers. Default 1.</summary>
    public int RetryAfterSeconds { get; set; } = 1;

    /// <summary>Answer 200 with a body that is not JSON.</summary>
    public bool Garbage { get; set; }

    /// <summary>Never answer (until the client gives up).</summary>
    public bool Hang { get; set; }

    /// <summary>A fixed reply for this model (before rules).</summary>
    public string? Reply { get; set; }

    /// <summary>When set, every second request of the same prompt gets this reply instead (an inconsistent model).</summary>
    public string? AlternateReply { get; set; }

    internal MockModelBehavior Clone() => (MockModelBehavior)MemberwiseClone();
}

namespace AspireTune.Engine.Generation;

/// <summary>Sampling settings, named as in the OpenAI completions API.</summary>
public sealed record GenerationOptions
{
    /// <summary>Most new tokens to produce; default 128. Zero generates nothing (scoring only).</summary>
    public int MaxTokens { get; init; } = 128;

    /// <summary>0 = greedy (argmax); otherwise logits are divided by it before sampling. Default 0.</summary>
    public double Temperature { get; init; }

    /// <summary>Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p. Default 1.</summary>
    public double TopP { get; init; } = 1.0;

    /// <summary>Generation ends before any of these strings; they are not part of the output.</summary>
    public IReadOnlyList<string> Stop { get; init; } = [];

    /// <summary>Seed for sampling; null draws from the global generator.</summary>
    public long? Seed { get; init; }

    /// <summary>Also stop at the tokenizer's end-of-text token; default true.</summary>
    public bool StopAtEos { get; init; } = true;

    /// <summary>Report this many most likely alternatives per token (0-20); default 0.</summary>
    public int TopLogprobs { get; init; }

    /// <summary>Added to a token's logit before sampling (OpenAI <c>logit_bias</c>: -100 all but bans, 100 all but forces); null for none.</summary>
    public IReadOnlyDictionary<int, double>? LogitBias { get; init; }

    /// <summary>Makes a fresh constraint for each generation (a grammar as a logit mask); null for free text.</summary>
    public Func<ITokenConstraint>? Constraint { get; init; }
}

/// <summary>One generated token as it streams out.</summary>
/// <param name="Id">Token id.</param>
/// <param name="Text">The text this token releases (may be empty while a UTF-8 character or stop prefix is incomplete).</param>
/// <param name="Logprob">Natural-log probability of the token under the model's unmodified distribution.</param>
/// <param name="TopLogprobs">Most likely alternatives when requested.</param>
public sealed record GeneratedToken(int Id, string Text, double Logprob, IReadOnlyList<(int Id, double Logprob)>? TopLogprobs);

/// <summary>One item of a stream that also says how it ended: a token, or, last, no token and the finish reason.</summary>
public sealed record StreamedToken(GeneratedToken? Token, string? FinishReason);

/// <summary>Why generation ended: <c>stop</c> (end-of-text or a stop sequence) or <c>length</c> (max tokens).</summary>
public static class FinishReasons
{
    public const string Stop = "stop";
    public const string Length = "length";
}

/// <summary>A finished generation.</summary>
public sealed record GenerationResult(string Text, IReadOnlyList<GeneratedToken> Tokens, string FinishReason, int PromptTokens);

/// <summary>Log-probabilities of given tokens (the first token has none: nothing precedes it).</summary>
public sealed record TokenScores(IReadOnlyList<int> Ids, IReadOnlyList<double?> Logprobs)
{
    public double Total => Logprobs.Sum(l => l ?? 0);
}

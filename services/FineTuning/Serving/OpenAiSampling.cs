using System.Text.Json;
using System.Text.Json.Nodes;
using AspireTune.Engine.Generation;
using AspireTune.Engine.Models;
using static AspireTune.ServiceDefaults.OpenAi.OpenAiRequest;

namespace AspireTune.FineTuning.Serving;

/// <summary>The sampling parameters both completion endpoints share, read and checked once.</summary>
internal static class OpenAiSampling
{
    internal sealed record Sampling(int MaxTokens, double? Temperature, double? TopP, IReadOnlyList<string> Stop, long? Seed, int N, bool Logprobs, int TopLogprobs, int? CompletionLogprobs)
    {
        /// <summary>
        /// What the request left out taken from the model's <c>generation_config.json</c>, as vLLM serves by default: its
        /// <c>temperature</c> and <c>top_p</c>, greedy where it says <c>do_sample: false</c>; the OpenAI defaults (1, 1)
        /// where it says nothing. What the request gives always wins.
        /// </summary>
        public Sampling WithDefaults(GenerationConfig model) => this with
        {
            Temperature = Temperature ?? (model.DoSample == false ? 0 : model.Temperature ?? 1.0),
            TopP = TopP ?? (model.DoSample == false ? 1.0 : model.TopP ?? 1.0),
        };

        /// <summary><c>logit_bias</c>: token id to a bias in [-100, 100].</summary>
        public IReadOnlyDictionary<int, double>? LogitBias { get; init; }

        /// <summary><c>best_of</c> (completions): candidates generated per prompt, of which the <see cref="N"/> best are returned.</summary>
        public int BestOf { get; init; } = 1;

        /// <summary>Options for choice <paramref name="index"/>: each choice of a seeded request gets its own seed, so n choices differ yet repeat.</summary>
        public GenerationOptions ToOptions(int index = 0) => new()
        {
            LogitBias = LogitBias,
            MaxTokens = MaxTokens,
            Temperature = Temperature ?? 1.0,
            TopP = TopP ?? 1.0,
            Stop = Stop,
            Seed = Seed is { } seed ? seed + index : null,
            TopLogprobs = CompletionLogprobs ?? TopLogprobs,
        };
    }

    internal static Sampling ParseSampling(JsonObject body, int defaultMaxTokens, bool chat)
    {
        var maxTokens = OptionalInt(body, chat && body.ContainsKey("max_completion_tokens") ? "max_completion_tokens" : "max_tokens", 0, 1_000_000) ?? defaultMaxTokens;
        if (chat && maxTokens == 0)
            throw new OpenAiException(400, "max_tokens must be at least 1 for chat completions; use /v1/completions with echo to score a prompt.", "max_tokens");
        var temperature = OptionalDouble(body, "temperature", 0, 2);
        var topP = OptionalDouble(body, "top_p", 0, 1);
        if (topP == 0)
            throw new OpenAiException(400, "top_p must be greater than 0.", "top_p");
        var stop = body["stop"] switch
        {
            null => [],
            JsonValue v when v.GetValueKind() == JsonValueKind.String => [v.GetValue<string>()],
            JsonValue v when v.GetValueKind() == JsonValueKind.Null => [],
            JsonArray a when a.Count <= 4 && a.All(x => x?.GetValueKind() == JsonValueKind.String) => a.Select(x => x!.GetValue<string>()).ToList(),
            _ => throw new OpenAiException(400, "'stop' must be a string or an array of up to 4 strings.", "stop"),
        };
        if (stop.Any(s => s.Length == 0))
            throw new OpenAiException(400, "Stop sequences must not be empty.", "stop");
        var seed = body["seed"] is null || body["seed"]!.GetValueKind() == JsonValueKind.Null ? (long?)null
            : body["seed"]!.AsValue().TryGetValue<long>(out var s) ? s : throw new OpenAiException(400, "'seed' must be an integer.", "seed");
        var n = OptionalInt(body, "n", 1, 128) ?? 1;
        bool logprobs = false;
        int topLogprobs = 0;
        int? completionLogprobs = null;
        if (chat)
        {
            logprobs = OptionalBool(body, "logprobs") ?? false;
            topLogprobs = OptionalInt(body, "top_logprobs", 0, 20) ?? 0;
            if (topLogprobs > 0 && !logprobs)
                throw new OpenAiException(400, "top_logprobs requires logprobs: true.", "top_logprobs");
        }
        else
            completionLogprobs = OptionalInt(body, "logprobs", 0, 20);
        var bestOf = chat ? 1 : OptionalInt(body, "best_of", 1, 20) ?? n;
        if (!chat && bestOf < n)
            throw new OpenAiException(400, $"best_of ({bestOf}) must be at least n ({n}).", "best_of");
        return new Sampling(maxTokens, temperature, topP, stop, seed, n, logprobs, topLogprobs, completionLogprobs)
        {
            LogitBias = ParseLogitBias(body),
            BestOf = bestOf,
        };
    }

    private static Dictionary<int, double>? ParseLogitBias(JsonObject body)
    {
        if (body["logit_bias"] is null || body["logit_bias"]!.GetValueKind() == JsonValueKind.Null)
            return null;
        if (body["logit_bias"] is not JsonObject map)
            throw new OpenAiException(400, "'logit_bias' must be an object of token id (as a string) to a bias between -100 and 100.", "logit_bias");
        var bias = new Dictionary<int, double>();
        foreach (var (key, value) in map)
        {
            if (!int.TryParse(key, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id))
                throw new OpenAiException(400, $"logit_bias key '{key}' is not a token id.", "logit_bias");
            if (value is not JsonValue v || !v.TryGetValue<double>(out var b) || b is < -100 or > 100)
                throw new OpenAiException(400, $"logit_bias[{key}] must be a number between -100 and 100.", "logit_bias");
            bias[id] = b;
        }
        return bias;
    }

    /// <summary><c>stream_options.include_usage</c>: a stream ends with one chunk of no choices that carries the usage.</summary>
    internal static bool IncludeUsage(JsonObject body) => body["stream_options"] is JsonObject so && so["include_usage"]?.GetValueKind() == JsonValueKind.True;

    /// <summary>Checks <c>logit_bias</c> ids against the model's vocabulary once it is known.</summary>
    internal static void CheckLogitBias(Sampling settings, int vocabularySize)
    {
        if (settings.LogitBias?.Keys.FirstOrDefault(id => id >= vocabularySize) is { } bad && bad >= vocabularySize)
            throw new OpenAiException(400, $"logit_bias names token {bad}, outside this model's vocabulary of {vocabularySize}.", "logit_bias");
    }
}

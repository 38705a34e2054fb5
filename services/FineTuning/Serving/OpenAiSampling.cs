using System.Text.Json;
using System.Text.Json.Nodes;
using AspireTune.Engine.Generation;
using static AspireTune.FineTuning.Serving.OpenAiRequest;

namespace AspireTune.FineTuning.Serving;

/// <summary>The sampling parameters both completion endpoints share, read and checked once.</summary>
internal static class OpenAiSampling
{
    internal sealed record Sampling(int MaxTokens, double Temperature, double TopP, IReadOnlyList<string> Stop, long? Seed, int N, bool Logprobs, int TopLogprobs, int? CompletionLogprobs)
    {
        public GenerationOptions ToOptions() => new()
        {
            MaxTokens = MaxTokens,
            Temperature = Temperature,
            TopP = TopP,
            Stop = Stop,
            Seed = Seed,
            TopLogprobs = CompletionLogprobs ?? TopLogprobs,
        };
    }

    internal static Sampling ParseSampling(JsonObject body, int defaultMaxTokens, bool chat)
    {
        var maxTokens = OptionalInt(body, chat && body.ContainsKey("max_completion_tokens") ? "max_completion_tokens" : "max_tokens", 0, 1_000_000) ?? defaultMaxTokens;
        if (chat && maxTokens == 0)
            throw new OpenAiException(400, "max_tokens must be at least 1 for chat completions; use /v1/completions with echo to score a prompt.", "max_tokens");
        var temperature = OptionalDouble(body, "temperature", 0, 2) ?? 1.0;
        var topP = OptionalDouble(body, "top_p", 0, 1) ?? 1.0;
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
        return new Sampling(maxTokens, temperature, topP, stop, seed, n, logprobs, topLogprobs, completionLogprobs);
    }
}

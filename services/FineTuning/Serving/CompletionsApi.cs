using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AspireTune.FineTuning.Curation;
using AspireTune.FineTuning.Data;
using AspireTune.Engine.Generation;
using AspireTune.ServiceDefaults.Security;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;

using static AspireTune.FineTuning.Serving.OpenAiApi;
using static AspireTune.FineTuning.Serving.OpenAiSampling;
using static AspireTune.ServiceDefaults.OpenAi.OpenAiRequest;

namespace AspireTune.FineTuning.Serving;

/// <summary><c>POST /v1/completions</c>: string or token-id prompts, echo, logprobs, <c>max_tokens: 0</c> for scoring.</summary>
public static class CompletionsApi
{
    private const int DefaultMaxTokens = 16;

    public static async Task<IResult> CompletionsAsync(HttpContext http, FineTuningDbContext db, ModelHost host, Registry.CheckpointModels checkpoints, CancellationToken ct)
    {
        try
        {
            var body = await ReadBodyAsync(http.Request, ct);
            var model = await FindModelAsync(db, checkpoints, body, ct);
            var settings = ParseSampling(body, DefaultMaxTokens, chat: false);
            var echo = OptionalBool(body, "echo") ?? false;
            var stream = OptionalBool(body, "stream") ?? false;
            var prompts = ParsePrompts(body, model.HasTokenizer);
            if (stream && echo)
                throw new OpenAiException(400, "Streaming does not echo the prompt here; use echo without stream.", "echo");
            if (stream && settings.BestOf > settings.N)
                throw new OpenAiException(400, "best_of picks the best candidates once all are generated, so it cannot stream; leave it out (or equal to n) with stream.", "best_of");
            var includeUsage = IncludeUsage(body);

            var clock = Stopwatch.StartNew();
            using var lease = await host.AcquireAsync(model, ct);
            settings = settings.WithDefaults(lease.Model.Generation); // what the request leaves out, as generation_config.json has it
            var id = "cmpl-" + Guid.NewGuid().ToString("N");
            var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            var encoded = prompts.Select(p => p.Ids ?? lease.Generator.EncodePrompt(p.Text!)).ToList();
            foreach (var ids in encoded)
            {
                if (ids.Count == 0)
                    throw new OpenAiException(400, "The prompt is empty: at least one token is needed.", "prompt");
                if (ids.FirstOrDefault(i => i < 0 || i >= lease.Model.Config.VocabSize) is var bad && (bad < 0 || bad >= lease.Model.Config.VocabSize))
                    throw new OpenAiException(400, $"Token id {bad} is outside the model's vocabulary of {lease.Model.Config.VocabSize}.", "prompt");
                CheckContext(lease, ids.Count, settings.MaxTokens, "prompt");
            }
            CheckLogitBias(settings, lease.Model.Config.VocabSize);
            if (stream)
            {
                await StartSseAsync(http);
                // Choice p * n + j is the j-th of prompt p, with the options (seed) the non-streamed path gives it.
                var requests = encoded.SelectMany((ids, p) => Enumerable.Range(0, settings.N).Select(j => new ChoiceRequest(p * settings.N + j, ids, settings.ToOptions(j)))).ToList();
                var count = 0;
                // Each chunk's logprobs cover its token, text_offset counted within its choice's text (as unstreamed).
                var offsets = new Dictionary<int, int>();
                await foreach (var piece in StreamedChoices.StreamAsync(lease.Generator, requests, ct))
                {
                    count += piece.Token is null ? 0 : 1;
                    JsonObject? logprobs = null;
                    if (piece.Token is { } scored && settings.CompletionLogprobs is not null)
                    {
                        var part = new CompletionLogprobs();
                        var offset = offsets.GetValueOrDefault(piece.Index);
                        part.Add(TokenText(lease, scored.Id), scored.Logprob, TopByText(lease, scored.TopLogprobs), offset);
                        offsets[piece.Index] = offset + scored.Text.Length;
                        logprobs = part.ToJson();
                    }
                    var choice = piece.Token is { } token
                        ? new JsonObject { ["index"] = piece.Index, ["text"] = token.Text, ["logprobs"] = logprobs, ["finish_reason"] = null, ["token_ids"] = new JsonArray(token.Id) }
                        : new JsonObject { ["index"] = piece.Index, ["text"] = "", ["logprobs"] = null, ["finish_reason"] = piece.FinishReason };
                    await WriteSseAsync(http, CompletionChunk(id, created, model.Id, new JsonArray(choice)), ct);
                }
                var prompted = encoded.Sum(ids => ids.Count);
                if (includeUsage)
                {
                    var usage = CompletionChunk(id, created, model.Id, []);
                    usage["usage"] = Usage(prompted, count);
                    await WriteSseAsync(http, usage, ct);
                }
                await http.Response.WriteAsync("data: [DONE]\n\n", ct);
                Record(clock, prompted, count);
                return Results.Empty;
            }

            var choices = new JsonArray();
            int promptTokens = 0, completionTokens = 0;
            // Every prompt's best_of candidates are submitted at once: the model decodes them together.
            var pending = encoded.Select(ids => Enumerable.Range(0, settings.BestOf)
                .Select(k => settings.MaxTokens == 0 ? Task.FromResult<GenerationResult?>(null) : CandidateAsync(lease, ids, settings.ToOptions(k), ct)).ToArray()).ToList();
            for (var p = 0; p < encoded.Count; p++)
            {
                var ids = encoded[p];
                promptTokens += ids.Count;
                // best_of candidates, of which the n with the highest mean token logprob are returned, in generation order.
                var candidates = await Task.WhenAll(pending[p]);
                completionTokens += candidates.Sum(c => c?.Tokens.Count ?? 0);
                var kept = candidates.Select((c, k) => (Result: c, Order: k))
                    .OrderByDescending(c => c.Result is { Tokens.Count: > 0 } r ? r.Tokens.Average(t => t.Logprob) : 0).Take(settings.N).OrderBy(c => c.Order)
                    .Select(c => c.Result).ToList();
                var scores = echo && settings.CompletionLogprobs is not null ? await lease.Generator.ScoreAsync(ids, ct) : null;
                for (var j = 0; j < kept.Count; j++)
                    choices.Add(Choice(lease, model, prompts[p], ids, kept[j], p * settings.N + j, echo, settings, scores));
            }
            Record(clock, promptTokens, completionTokens);
            return Results.Json(new JsonObject
            {
                ["id"] = id,
                ["object"] = "text_completion",
                ["created"] = created,
                ["model"] = model.Id,
                ["choices"] = choices,
                ["usage"] = Usage(promptTokens, completionTokens),
                ["system_fingerprint"] = "aspiretune",
            });
        }
        catch (OpenAiException ex)
        {
            return await ErrorAsync(http, ex);
        }
    }

    private static JsonObject CompletionChunk(string id, long created, string model, JsonArray choices) =>
        new() { ["id"] = id, ["object"] = "text_completion", ["created"] = created, ["model"] = model, ["choices"] = choices };

    private static async Task<GenerationResult?> CandidateAsync(ModelHost.Lease lease, IReadOnlyList<int> ids, GenerationOptions options, CancellationToken ct) =>
        await lease.Generator.GenerateAsync(ids, options, ct);

    private static JsonObject Choice(ModelHost.Lease lease, RegisteredModel model, Prompt prompt, IReadOnlyList<int> ids, GenerationResult? result, int index, bool echo, Sampling settings,
        TokenScores? scores)
    {
        var generated = result?.Tokens ?? [];
        var text = new StringBuilder();
        var logprobs = settings.CompletionLogprobs is not null ? new CompletionLogprobs() : null;
        if (echo)
        {
            var tokenizer = model.HasTokenizer ? lease.Model.Tokenizer : null;
            // A tokenizer that prepends a bos (Llama's <s>, Llama 3's <|begin_of_text|>) echoes it as the tokens list shows it,
            // so text_offset points into the text.
            var added = prompt.Text is not null && tokenizer?.BosTokenId is { } bos && ids.Count > 0 && ids[0] == bos
                && !prompt.Text.StartsWith(TokenText(lease, bos), StringComparison.Ordinal) ? 1 : 0;
            var promptText = (added == 1 ? TokenText(lease, ids[0]) : "") + (prompt.Text ?? tokenizer?.Decode(ids) ?? "");
            if (logprobs is not null && scores is not null)
            {
                var offset0 = 0;
                for (var i = 0; i < ids.Count; i++)
                {
                    logprobs.Add(TokenText(lease, ids[i]), scores.Logprobs[i], null, offset0);
                    offset0 += i < added || tokenizer is null ? TokenText(lease, ids[i]).Length : DecodedLength(tokenizer, ids, added, i);
                }
            }
            text.Append(promptText);
        }
        var offset = text.Length;
        foreach (var token in generated)
        {
            logprobs?.Add(TokenText(lease, token.Id), token.Logprob, TopByText(lease, token.TopLogprobs), offset);
            text.Append(token.Text);
            offset += token.Text.Length;
        }
        return new JsonObject
        {
            ["index"] = index,
            ["text"] = text.ToString(),
            ["logprobs"] = logprobs?.ToJson(),
            ["finish_reason"] = result?.FinishReason ?? FinishReasons.Length,
            ["token_ids"] = new JsonArray(generated.Select(t => (JsonNode)t.Id).ToArray()),
        };
    }

    /// <summary>
    /// How much echoed prompt token <paramref name="i"/> adds to the decoded text: what decoding it after a few tokens
    /// before it adds, so SentencePiece's "▁" at the start of a text (dropped by decoding) and bytes of one UTF-8
    /// character split over tokens count as the text has them, in linear time.
    /// </summary>
    private static int DecodedLength(AspireTune.Engine.Tokenization.ITokenizer tokenizer, IReadOnlyList<int> ids, int start, int i)
    {
        var from = Math.Max(start, i - 4);
        var before = i == from ? 0 : tokenizer.Decode(ids.Skip(from).Take(i - from)).Length;
        return tokenizer.Decode(ids.Skip(from).Take(i + 1 - from)).Length - before;
    }

    /// <summary>
    /// The legacy <c>top_logprobs</c> entry, keyed by token text. Tokens that are parts of one UTF-8 character all read
    /// as U+FFFD, so two may share a text: the likelier one (listed first) keeps the key.
    /// </summary>
    private static Dictionary<string, double>? TopByText(ModelHost.Lease lease, IReadOnlyList<(int Id, double Logprob)>? top)
    {
        if (top is null)
            return null;
        var byText = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var alternative in top)
            byText.TryAdd(TokenText(lease, alternative.Id), alternative.Logprob);
        return byText;
    }

    /// <summary>The legacy completions <c>logprobs</c> object: parallel arrays per token.</summary>
    private sealed class CompletionLogprobs
    {
        private readonly JsonArray _tokens = [], _logprobs = [], _top = [], _offsets = [];

        public void Add(string token, double? logprob, Dictionary<string, double>? top, int offset)
        {
            _tokens.Add(token);
            _logprobs.Add(logprob);
            _top.Add(top is null ? null : new JsonObject(top.Select(t => KeyValuePair.Create(t.Key, (JsonNode?)t.Value))));
            _offsets.Add(offset);
        }

        public JsonObject ToJson() => new() { ["tokens"] = _tokens, ["token_logprobs"] = _logprobs, ["top_logprobs"] = _top, ["text_offset"] = _offsets };
    }

    private sealed record Prompt(string? Text, IReadOnlyList<int>? Ids);

    private static List<Prompt> ParsePrompts(JsonObject body, bool hasTokenizer)
    {
        var node = body["prompt"] ?? throw new OpenAiException(400, "'prompt' is required: a string, an array of token ids, or an array of either.", "prompt");
        var prompts = node switch
        {
            JsonValue v when v.GetValueKind() == JsonValueKind.String => [new Prompt(v.GetValue<string>(), null)],
            JsonArray a when a.Count > 0 && a.All(x => x?.GetValueKind() == JsonValueKind.Number) => [new Prompt(null, TokenIds(a))],
            JsonArray a when a.Count > 0 && a.All(x => x?.GetValueKind() == JsonValueKind.String) => a.Select(x => new Prompt(x!.GetValue<string>(), null)).ToList(),
            JsonArray a when a.Count > 0 && a.All(x => x is JsonArray inner && inner.All(y => y?.GetValueKind() == JsonValueKind.Number)) => a.Select(x => new Prompt(null, TokenIds((JsonArray)x!))).ToList(),
            _ => throw new OpenAiException(400, "'prompt' must be a string, an array of token ids, an array of strings or an array of token-id arrays.", "prompt"),
        };
        if (!hasTokenizer && prompts.Any(p => p.Text is not null))
            throw new OpenAiException(400, "This model has no tokenizer: send the prompt as an array of token ids.", "prompt", "model_without_tokenizer");
        return prompts;
    }

    private static List<int> TokenIds(JsonArray array) =>
        array.Select((x, i) => x!.AsValue().TryGetValue<int>(out var id) ? id : throw new OpenAiException(400, $"prompt[{i}] is not a whole token id.", "prompt")).ToList();
}

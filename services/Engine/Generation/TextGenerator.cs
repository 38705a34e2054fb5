using System.Runtime.CompilerServices;
using System.Text;
using AspireTune.Engine.Models;
using static TorchSharp.torch;

namespace AspireTune.Engine.Generation;

/// <summary>
/// Autoregressive decoding with a KV cache: greedy, temperature, top-p, stop sequences, per-token logprobs,
/// and scoring of given tokens. One generator serves one request at a time per model.
/// </summary>
public sealed class TextGenerator(CausalLm model)
{
    public CausalLm Model { get; } = model;

    /// <summary>Tokenizes a prompt (BOS added where the family uses one).</summary>
    public IReadOnlyList<int> EncodePrompt(string prompt)
    {
        var tok = Model.Tokenizer ?? throw new InvalidOperationException("the model has no tokenizer: pass token ids");
        var ids = new List<int>();
        if (tok.BosTokenId is { } bos) ids.Add(bos);
        ids.AddRange(tok.Encode(prompt));
        return ids;
    }

    public GenerationResult Generate(string prompt, GenerationOptions options, CancellationToken cancellationToken = default) =>
        Generate(EncodePrompt(prompt), options, cancellationToken);

    public GenerationResult Generate(IReadOnlyList<int> promptIds, GenerationOptions options, CancellationToken cancellationToken = default)
    {
        var tokens = new List<GeneratedToken>();
        var text = new StringBuilder();
        var reason = FinishReasons.Length;
        foreach (var (token, finish) in Decode(promptIds, options, cancellationToken))
        {
            if (token is not null)
            {
                tokens.Add(token);
                text.Append(token.Text);
            }
            if (finish is not null) reason = finish;
        }
        return new GenerationResult(text.ToString(), tokens, reason, promptIds.Count);
    }

    /// <summary>Streams tokens as they are decoded; the text of the tokens concatenates to the result text.</summary>
    public async IAsyncEnumerable<GeneratedToken> StreamAsync(IReadOnlyList<int> promptIds, GenerationOptions options,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        foreach (var (token, _) in Decode(promptIds, options, cancellationToken))
        {
            if (token is not null) yield return token;
            // Let the caller's consumer run between tokens without holding a thread-pool thread hostage.
            await Task.Yield();
        }
    }

    /// <summary>
    /// Log-probability of each token given those before it (OpenAI <c>echo</c> with <c>max_tokens: 0</c>).
    /// </summary>
    public TokenScores Score(IReadOnlyList<int> ids)
    {
        ValidateIds(ids);
        var result = new double?[ids.Count];
        if (ids.Count > 1)
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var input = tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Count], device: Model.Device);
            var logits = Model.Forward(input);
            var logp = logits[0, ..^1].log_softmax(-1);
            var targets = input[0, 1..].unsqueeze(1);
            var picked = logp.gather(1, targets).squeeze(1).cpu().data<float>().ToArray();
            for (var i = 1; i < ids.Count; i++) result[i] = picked[i - 1];
        }
        return new TokenScores(ids, result);
    }

    private void ValidateIds(IReadOnlyList<int> ids)
    {
        for (var i = 0; i < ids.Count; i++)
            if ((uint)ids[i] >= (uint)Model.Config.VocabSize)
                throw new ArgumentException($"token id {ids[i]} at position {i} is outside the vocabulary of {Model.Config.VocabSize}");
        if (ids.Count > Model.Config.MaxPositions)
            throw new ArgumentException($"{ids.Count} tokens exceed the model's context of {Model.Config.MaxPositions}");
    }

    private IEnumerable<(GeneratedToken? Token, string? Finish)> Decode(IReadOnlyList<int> promptIds, GenerationOptions options,
        CancellationToken cancellationToken)
    {
        if (promptIds.Count == 0) throw new ArgumentException("the prompt is empty: at least one token is needed");
        ValidateIds(promptIds);
        if (options.Temperature < 0) throw new ArgumentException("temperature must be >= 0");
        if (options.TopP is <= 0 or > 1) throw new ArgumentException("top_p must be in (0, 1]");
        var maxNew = Math.Min(options.MaxTokens, Model.Config.MaxPositions - promptIds.Count);
        if (maxNew <= 0) yield break;

        var tok = Model.Tokenizer;
        var eos = options.StopAtEos ? tok?.EosTokenId ?? Model.Config.EosTokenId : null;
        var decoder = new StreamingText(options.Stop);
        Generator? rng = options.Seed is { } seed ? new Generator((ulong)seed, Model.Device) : null;
        using var cache = Model.NewCache();
        using var shaping = new LogitShaping(options, Model.Config.VocabSize, Model.Device);
        Model.SetTraining(false);
        var next = tensor(promptIds.Select(i => (long)i).ToArray(), [1, promptIds.Count], device: Model.Device);
        try
        {
            for (var step = 0; step < maxNew; step++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                int id;
                double logprob;
                List<(int, double)>? top = null;
                // Grad mode and dispose scopes are per thread, and a stream may resume on another thread after
                // each token: both are entered and left within the step, never across a yield.
                using (var scope = NewDisposeScope())
                using (no_grad())
                {
                    var logits = Model.Forward(next, null, cache)[0, -1];
                    var logp = logits.log_softmax(-1);
                    id = Pick(shaping.Apply(logits), options, rng);
                    logprob = logp[id].item<float>();
                    if (options.TopLogprobs > 0)
                    {
                        var (vals, idx) = logp.topk(Math.Min(options.TopLogprobs, 20));
                        var v = vals.cpu().data<float>().ToArray();
                        var ix = idx.cpu().data<long>().ToArray();
                        top = [.. v.Select((x, i) => ((int)ix[i], (double)x))];
                    }
                }
                next.Dispose();
                next = tensor(new long[] { id }, [1, 1], device: Model.Device);
                if (eos == id)
                {
                    yield return (decoder.Flush() is { Length: > 0 } rest ? new GeneratedToken(id, rest, logprob, top) : null, FinishReasons.Stop);
                    yield break;
                }
                shaping.Accept(id);
                var bytes = tok?.TokenBytes(id) ?? [];
                var (released, stopped) = decoder.Push(bytes);
                // A constraint whose grammar is complete ends the output as a stop sequence would, all text released.
                var complete = !stopped && shaping.IsComplete;
                var last = step == maxNew - 1;
                // On the last token, text held back as a possible stop prefix is released with it.
                if ((last || complete) && !stopped) released += decoder.Flush();
                stopped |= complete;
                yield return (new GeneratedToken(id, released, logprob, top),
                    stopped ? FinishReasons.Stop : last ? FinishReasons.Length : null);
                if (stopped) yield break;
            }
        }
        finally
        {
            next.Dispose();
            rng?.Dispose();
        }
    }

    private static int Pick(Tensor logits, GenerationOptions options, Generator? rng)
    {
        if (options.Temperature == 0) return (int)logits.argmax().item<long>();
        var probs = (logits / options.Temperature).softmax(-1);
        if (options.TopP < 1.0)
        {
            var (sorted, idx) = probs.sort(descending: true);
            var cum = sorted.cumsum(0);
            // Drop tokens once the mass before them already reaches top_p; the first token always stays.
            var drop = (cum - sorted).gt(options.TopP);
            sorted = sorted.masked_fill(drop, 0);
            var choice = sorted.multinomial(1, generator: rng);
            return (int)idx.gather(0, choice).item<long>();
        }
        return (int)probs.multinomial(1, generator: rng).item<long>();
    }
}

/// <summary>
/// Turns token bytes into text safely for streaming: holds back incomplete UTF-8 characters and any tail
/// that could be the start of a stop sequence, and cuts the output where a stop sequence appears.
/// </summary>
internal sealed class StreamingText(IReadOnlyList<string> stops)
{
    private readonly Decoder _utf8 = new UTF8Encoding(false).GetDecoder();
    private readonly StringBuilder _pending = new();

    public (string Released, bool Stopped) Push(byte[] bytes)
    {
        var chars = new char[_utf8.GetCharCount(bytes, false)];
        _utf8.GetChars(bytes, chars, false);
        _pending.Append(chars);
        var text = _pending.ToString();
        foreach (var s in stops)
        {
            if (s.Length == 0) continue;
            var at = text.IndexOf(s, StringComparison.Ordinal);
            if (at >= 0)
            {
                _pending.Clear();
                return (text[..at], true);
            }
        }
        var keep = 0;
        foreach (var s in stops)
            for (var k = Math.Min(s.Length - 1, text.Length); k > keep; k--)
                if (text.EndsWith(s[..k], StringComparison.Ordinal)) { keep = k; break; }
        _pending.Clear();
        _pending.Append(text[^keep..]);
        return (text[..^keep], false);
    }

    public string Flush()
    {
        var text = _pending.ToString();
        _pending.Clear();
        return text;
    }
}

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
        DecodeState.ValidateIds(Model, ids);
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

    private IEnumerable<(GeneratedToken? Token, string? Finish)> Decode(IReadOnlyList<int> promptIds, GenerationOptions options,
        CancellationToken cancellationToken)
    {
        using var state = new DecodeState(Model, promptIds, options);
        if (state.MaxNew <= 0) yield break;
        using var cache = Model.NewCache();
        Model.SetTraining(false);
        // GPT-2 in fp32 on CUDA: the steps after the prefill go through the engine's decode kernels.
        using var fast = Gpt2Decoder.TryCreate(Model);
        var next = tensor(promptIds.Select(i => (long)i).ToArray(), [1, promptIds.Count], device: Model.Device);
        var lastId = 0;
        try
        {
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                (GeneratedToken? Token, string? Finish) emitted;
                // Grad mode and dispose scopes are per thread, and a stream may resume on another thread after
                // each token: both are entered and left within the step, never across a yield.
                using (var scope = NewDisposeScope())
                using (no_grad())
                {
                    if (fast is not null && state.Generated > 0)
                    {
                        var (token, position) = (lastId, promptIds.Count + state.Generated - 1);
                        if (state.PlainGreedy)
                        {
                            var (id, logprob) = fast.Greedy(token, position);
                            emitted = state.Accept(id, logprob, null);
                        }
                        else
                        {
                            emitted = state.Step(fast.Logits(token, position));
                        }
                    }
                    else
                    {
                        var hidden = Model.Network.Hidden(next, null, cache);
                        var logits = Model.Network.Head(hidden[0, -1]).to(ScalarType.Float32);
                        emitted = state.Step(logits);
                        fast?.Load(cache);
                    }
                }
                yield return emitted;
                if (emitted.Finish is not null) yield break;
                lastId = emitted.Token!.Id;
                if (fast is not null) continue;
                next.Dispose();
                next = tensor(new long[] { lastId }, [1, 1], device: Model.Device);
            }
        }
        finally
        {
            next.Dispose();
        }
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

using AspireTune.Engine.Models;
using AspireTune.Engine.Tokenization;
using static TorchSharp.torch;

namespace AspireTune.Engine.Generation;

/// <summary>
/// What one generation carries from token to token, whoever runs the model for it (<see cref="TextGenerator"/>
/// alone, <see cref="BatchedGenerator"/> in a batch): the pick (greedy, temperature, top-p, seed, logit shaping),
/// the end-of-text and stop-sequence checks, the text released so far and the finish reason.
/// </summary>
internal sealed class DecodeState : IDisposable
{
    private readonly GenerationOptions _options;
    private readonly IReadOnlySet<int> _stops;
    private readonly ITokenizer? _tokenizer;
    private readonly StreamingText _text;
    private readonly Generator? _rng;
    private readonly LogitShaping _shaping;

    public DecodeState(CausalLm model, IReadOnlyList<int> promptIds, GenerationOptions options)
    {
        MaxNew = Validate(model, promptIds, options);
        _options = options;
        var tok = model.Tokenizer;
        _stops = options.StopAtEos ? model.StopTokenIds : new HashSet<int>();
        _tokenizer = tok;
        _text = new StreamingText(options.Stop);
        _rng = options.Seed is { } seed ? new Generator((ulong)seed, model.Device) : null;
        _shaping = new LogitShaping(options, model.Config.VocabSize, model.Device);
    }

    /// <summary>Most tokens this generation can produce (max_tokens, cut to the context left after the prompt).</summary>
    public int MaxNew { get; }

    /// <summary>Tokens accepted so far.</summary>
    public int Generated { get; private set; }

    /// <summary>
    /// True when the pick is the plain argmax of the model's logits with no top alternatives to report, so a batch can
    /// pick all such rows at once.
    /// </summary>
    public bool PlainGreedy => _options.Temperature == 0 && !_shaping.ShapesLogits && _options.TopLogprobs == 0;

    /// <summary>Checks a request before any model work; returns how many tokens it may generate. Throws <see cref="ArgumentException"/>.</summary>
    public static int Validate(CausalLm model, IReadOnlyList<int> promptIds, GenerationOptions options)
    {
        if (promptIds.Count == 0) throw new ArgumentException("the prompt is empty: at least one token is needed");
        ValidateIds(model, promptIds);
        if (options.Temperature < 0) throw new ArgumentException("temperature must be >= 0");
        if (options.TopP is <= 0 or > 1) throw new ArgumentException("top_p must be in (0, 1]");
        return Math.Max(0, Math.Min(options.MaxTokens, model.Config.MaxPositions - promptIds.Count));
    }

    public static void ValidateIds(CausalLm model, IReadOnlyList<int> ids)
    {
        for (var i = 0; i < ids.Count; i++)
            if ((uint)ids[i] >= (uint)model.Config.VocabSize)
                throw new ArgumentException($"token id {ids[i]} at position {i} is outside the vocabulary of {model.Config.VocabSize}");
        if (ids.Count > model.Config.MaxPositions)
            throw new ArgumentException($"{ids.Count} tokens exceed the model's context of {model.Config.MaxPositions}");
    }

    /// <summary>Picks and accepts the next token from this sequence's float32 logits [V] (call inside a dispose scope, no grad).</summary>
    public (GeneratedToken? Token, string? Finish) Step(Tensor logits)
    {
        var logp = logits.log_softmax(-1);
        var id = Pick(_shaping.Apply(logits));
        var logprob = logp[id].item<float>();
        List<(int, double)>? top = null;
        if (_options.TopLogprobs > 0)
        {
            var (vals, idx) = logp.topk(Math.Min(_options.TopLogprobs, 20));
            var v = vals.cpu().data<float>().ToArray();
            var ix = idx.cpu().data<long>().ToArray();
            top = [.. v.Select((x, i) => ((int)ix[i], (double)x))];
        }
        return Accept(id, logprob, top);
    }

    /// <summary>
    /// Takes token <paramref name="id"/>: what it releases, and the finish reason once the generation ends
    /// (<c>stop</c> at end-of-text, a stop sequence or a complete constraint; <c>length</c> at <see cref="MaxNew"/>).
    /// At end-of-text the token itself is not returned, only text still held back.
    /// </summary>
    public (GeneratedToken? Token, string? Finish) Accept(int id, double logprob, IReadOnlyList<(int, double)>? top)
    {
        Generated++;
        if (_stops.Contains(id))
            return (_text.Flush() is { Length: > 0 } rest ? new GeneratedToken(id, rest, logprob, top) : null, FinishReasons.Stop);
        _shaping.Accept(id);
        var (released, stopped) = _text.Push(_tokenizer?.TokenBytes(id) ?? []);
        // A constraint whose grammar is complete ends the output as a stop sequence would, all text released.
        var complete = !stopped && _shaping.IsComplete;
        var last = Generated >= MaxNew;
        // On the last token, text held back as a possible stop prefix is released with it.
        if ((last || complete) && !stopped) released += _text.Flush();
        stopped |= complete;
        return (new GeneratedToken(id, released, logprob, top), stopped ? FinishReasons.Stop : last ? FinishReasons.Length : null);
    }

    private int Pick(Tensor logits)
    {
        if (_options.Temperature == 0) return (int)logits.argmax().item<long>();
        var probs = (logits / _options.Temperature).softmax(-1);
        if (_options.TopP < 1.0)
        {
            var (sorted, idx) = probs.sort(descending: true);
            var cum = sorted.cumsum(0);
            // Drop tokens once the mass before them already reaches top_p; the first token always stays.
            var drop = (cum - sorted).gt(_options.TopP);
            sorted = sorted.masked_fill(drop, 0);
            var choice = sorted.multinomial(1, generator: _rng);
            return (int)idx.gather(0, choice).item<long>();
        }
        return (int)probs.multinomial(1, generator: _rng).item<long>();
    }

    public void Dispose()
    {
        _shaping.Dispose();
        _rng?.Dispose();
    }
}

// Over 400 lines on purpose: one scheduler (admission against the shared KV-cache pool, the step loop, joining and
// leaving sequences, cancellation) whose parts share the running batch's state; split, each would reach into the others.
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text;
using System.Threading.Channels;
using AspireTune.Engine.Models;
using static TorchSharp.torch;

namespace AspireTune.Engine.Generation;

/// <summary>Limits of a <see cref="BatchedGenerator"/>.</summary>
public sealed record BatchingOptions
{
    /// <summary>Positions the shared key/value cache holds for all sequences together; default 16,384.</summary>
    public int KvCacheTokens { get; init; } = 16_384;

    /// <summary>Most sequences decoded in one step; default 64.</summary>
    public int MaxBatch { get; init; } = 64;

    /// <summary>Most prompt positions (padded) prefilled in one forward pass, which bounds its activations; default 4,096.</summary>
    public int MaxPrefillTokens { get; init; } = 4_096;

    /// <summary>Positions per cache block; default 16.</summary>
    public int BlockSize { get; init; } = 16;
}

/// <summary>
/// Continuous batching: concurrent generations on one model are decoded together, one token for every running
/// sequence per forward pass. Sequences join (their prompts prefilled together) and leave (end-of-text, stop,
/// max_tokens, cancellation) between steps. Keys and values live in one <see cref="PagedKvCache"/> allocated once:
/// a request reserves its prompt plus max_tokens there when admitted, and waits, in arrival order, while that
/// does not fit. Each request keeps its own sampling settings and seed; greedy decoding gives the tokens
/// <see cref="TextGenerator"/> gives for the request alone. All model work runs on one thread of its own (TorchSharp's
/// dispose scopes and grad mode are per thread); callers only await.
/// </summary>
public sealed class BatchedGenerator : IDisposable
{
    private readonly BatchingOptions _options;
    private readonly TextGenerator _single;
    private readonly ConcurrentQueue<object> _incoming = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly LinkedList<Sequence> _waiting = new();
    private readonly List<Sequence> _running = [];
    private readonly Thread _thread;
    private PagedKvCache? _cache;
    private Gpt2Decoder? _kernels;
    private volatile bool _stopping;
    private long _decodeSteps;
    private int _peakBatch;
    private volatile int _cachedTokensFree = -1;

    public BatchedGenerator(CausalLm model, BatchingOptions? options = null)
    {
        _options = options ?? new BatchingOptions();
        if (_options.MaxBatch < 1 || _options.MaxPrefillTokens < 1 || _options.BlockSize < 1 || _options.KvCacheTokens < _options.BlockSize)
            throw new ArgumentException("batching limits must be positive and the cache must hold at least one block");
        Model = model;
        _single = new TextGenerator(model);
        CapacityTokens = _options.KvCacheTokens / _options.BlockSize * _options.BlockSize;
        _thread = new Thread(Loop) { IsBackground = true, Name = "AspireTune batched generation" };
        _thread.Start();
    }

    public CausalLm Model { get; }

    /// <summary>Positions the shared cache holds: a request needs its prompt plus its max_tokens (cut to the context) of them.</summary>
    public int CapacityTokens { get; }

    /// <summary>Batched decode steps run so far (each one token for every running sequence).</summary>
    public long DecodeSteps => Interlocked.Read(ref _decodeSteps);

    /// <summary>Most sequences that were ever decoded in one step.</summary>
    public int PeakBatch => Volatile.Read(ref _peakBatch);

    /// <summary>Cache positions not reserved by a running sequence (all of them until the cache is first used).</summary>
    public int FreeTokens => _cachedTokensFree < 0 ? CapacityTokens : _cachedTokensFree;

    /// <summary>Cache positions a request reserves: its prompt plus the tokens it may generate.</summary>
    public int TokensNeeded(int promptTokens, int maxTokens) => promptTokens + Math.Max(0, Math.Min(maxTokens, Model.Config.MaxPositions - promptTokens));

    /// <summary>Tokenizes a prompt (BOS added where the family uses one).</summary>
    public IReadOnlyList<int> EncodePrompt(string prompt) => _single.EncodePrompt(prompt);

    public async Task<GenerationResult> GenerateAsync(IReadOnlyList<int> promptIds, GenerationOptions options, CancellationToken cancellationToken = default)
    {
        var sequence = Submit(promptIds, options, cancellationToken);
        var tokens = new List<GeneratedToken>();
        var text = new StringBuilder();
        await foreach (var token in sequence.Tokens.Reader.ReadAllAsync(CancellationToken.None))
        {
            tokens.Add(token);
            text.Append(token.Text);
        }
        return new GenerationResult(text.ToString(), tokens, sequence.Finish ?? FinishReasons.Length, promptIds.Count);
    }

    /// <summary>Streams tokens as they are decoded; the text of the tokens concatenates to the result text.</summary>
    public async IAsyncEnumerable<GeneratedToken> StreamAsync(IReadOnlyList<int> promptIds, GenerationOptions options,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var item in StreamWithFinishAsync(promptIds, options, cancellationToken))
            if (item.Token is { } token)
                yield return token;
    }

    /// <summary>
    /// Streams tokens as <see cref="StreamAsync"/> does, then one last item with the finish reason (what
    /// <see cref="GenerateAsync"/> reports), for a stream that ends each choice with its own. The request is submitted
    /// on the first <c>MoveNextAsync</c>, before it first awaits.
    /// </summary>
    public async IAsyncEnumerable<StreamedToken> StreamWithFinishAsync(IReadOnlyList<int> promptIds, GenerationOptions options,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var sequence = Submit(promptIds, options, cancellationToken);
        await foreach (var token in sequence.Tokens.Reader.ReadAllAsync(CancellationToken.None))
            yield return new StreamedToken(token, null);
        yield return new StreamedToken(null, sequence.Finish ?? FinishReasons.Length);
    }

    /// <summary>Log-probability of each token given those before it, computed between decode steps.</summary>
    public Task<TokenScores> ScoreAsync(IReadOnlyList<int> ids, CancellationToken cancellationToken = default)
    {
        DecodeState.ValidateIds(Model, ids);
        var work = new ScoreWork(ids, cancellationToken);
        Enqueue(work, CancellationToken.None);
        return work.Result.Task;
    }

    private Sequence Submit(IReadOnlyList<int> promptIds, GenerationOptions options, CancellationToken cancellationToken)
    {
        var maxNew = DecodeState.Validate(Model, promptIds, options);
        if (promptIds.Count + maxNew > CapacityTokens)
            throw new ArgumentException($"the prompt ({promptIds.Count} tokens) plus max_tokens ({maxNew}) exceed the key/value cache of {CapacityTokens} positions");
        var sequence = new Sequence([.. promptIds], options, maxNew, cancellationToken);
        sequence.Registration = Enqueue(sequence, cancellationToken);
        return sequence;
    }

    private CancellationTokenRegistration Enqueue(object work, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        // Under the lock, so that the loop's last drain after Dispose sees every accepted request.
        lock (_incoming)
        {
            ObjectDisposedException.ThrowIf(_stopping, this);
            _incoming.Enqueue(work);
        }
        _wake.Release();
        // A cancelled request leaves at the next step boundary, or at once while it waits.
        return cancellationToken.UnsafeRegister(static s => ((SemaphoreSlim)s!).Release(), _wake);
    }

    private sealed class Sequence(int[] prompt, GenerationOptions options, int maxNew, CancellationToken cancellationToken)
    {
        public int[] Prompt { get; } = prompt;
        public GenerationOptions Options { get; } = options;
        public int MaxNew { get; } = maxNew;
        public CancellationToken Cancellation { get; } = cancellationToken;
        public Channel<GeneratedToken> Tokens { get; } = Channel.CreateUnbounded<GeneratedToken>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        public string? Finish { get; set; }
        public DecodeState? State { get; set; }
        public int[]? Blocks { get; set; }
        public CancellationTokenRegistration Registration { get; set; }

        /// <summary>Positions in the cache.</summary>
        public int Cached { get; set; }

        /// <summary>The last token picked, the input of the next step.</summary>
        public int Last { get; set; }
    }

    private sealed record ScoreWork(IReadOnlyList<int> Ids, CancellationToken Cancellation)
    {
        public TaskCompletionSource<TokenScores> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private void Loop()
    {
        Model.SetTraining(false);
        // GPT-2 in fp32 on CUDA: decode steps and greedy picks through the engine's kernels (prefill stays plain).
        _kernels = Gpt2Decoder.TryCreate(Model);
        while (!_stopping)
        {
            // With nothing running every waiting sequence fits (larger ones are refused at submission): only an idle loop sleeps.
            if (_running.Count == 0 && _waiting.Count == 0 && _incoming.IsEmpty) _wake.Wait();
            if (_stopping) break;
            while (_incoming.TryDequeue(out var work))
            {
                if (work is Sequence s) _waiting.AddLast(s);
                else Score((ScoreWork)work);
            }
            DropCancelled();
            var admitted = Admit();
            var decoding = _running.Where(s => !admitted.Contains(s)).ToList();
            if (admitted.Count > 0) Run(admitted, () => Prefill(admitted));
            if (decoding.Count > 0) Run(decoding, () => DecodeStep(decoding));
        }
        var stopped = new ObjectDisposedException(nameof(BatchedGenerator));
        foreach (var s in _running.Concat(_waiting)) End(s, stopped);
        while (_incoming.TryDequeue(out var work))
            if (work is Sequence s) End(s, stopped); else ((ScoreWork)work).Result.TrySetException(stopped);
        _cache?.Dispose();
        _kernels?.Dispose();
    }

    private void Score(ScoreWork work)
    {
        if (work.Cancellation.IsCancellationRequested)
        {
            work.Result.TrySetCanceled(work.Cancellation);
            return;
        }
        try
        {
            work.Result.TrySetResult(_single.Score(work.Ids));
        }
        catch (Exception ex)
        {
            work.Result.TrySetException(ex);
        }
    }

    private void DropCancelled()
    {
        foreach (var s in _running.Where(s => s.Cancellation.IsCancellationRequested).ToList())
            End(s, new OperationCanceledException(s.Cancellation));
        for (var node = _waiting.First; node is not null;)
        {
            var next = node.Next;
            if (node.Value.Cancellation.IsCancellationRequested)
            {
                _waiting.Remove(node);
                End(node.Value, new OperationCanceledException(node.Value.Cancellation));
            }
            node = next;
        }
    }

    /// <summary>Moves waiting sequences, oldest first, into the batch while their blocks and the prefill budget allow.</summary>
    private List<Sequence> Admit()
    {
        var admitted = new List<Sequence>();
        var prefillLength = 0;
        while (_waiting.First is { } node && _running.Count < _options.MaxBatch)
        {
            var s = node.Value;
            var longest = Math.Max(prefillLength, s.Prompt.Length);
            if (admitted.Count > 0 && longest * (admitted.Count + 1) > _options.MaxPrefillTokens) break;
            _cache ??= new PagedKvCache(Model.Config, CapacityTokens, _options.BlockSize,
                Model.Network.Settings.MatmulDType ?? ScalarType.Float32, Model.Device);
            // The head of the queue waits for blocks rather than being overtaken: no request starves.
            var blocks = _cache.Allocate(s.Prompt.Length + s.MaxNew);
            if (blocks is null) break;
            _waiting.RemoveFirst();
            s.Blocks = blocks;
            _cachedTokensFree = _cache.FreeBlocks * _cache.BlockSize;
            try
            {
                s.State = new DecodeState(Model, s.Prompt, s.Options);
            }
            catch (Exception ex)
            {
                End(s, ex);
                continue;
            }
            if (s.MaxNew == 0)
            {
                End(s, null);
                continue;
            }
            _running.Add(s);
            admitted.Add(s);
            prefillLength = longest;
        }
        return admitted;
    }

    /// <summary>Runs one forward pass for <paramref name="batch"/>; a failure ends those sequences with its exception, not the loop.</summary>
    private void Run(List<Sequence> batch, Action step)
    {
        try
        {
            step();
        }
        catch (Exception ex)
        {
            foreach (var s in batch) End(s, ex);
        }
    }

    /// <summary>The prompts of the newly admitted sequences, right-padded into one forward pass; picks each one's first token.</summary>
    private void Prefill(List<Sequence> batch)
    {
        var cache = _cache!;
        int b = batch.Count, t = batch.Max(s => s.Prompt.Length);
        var ids = new long[b * t];
        var rows = new long[b * t];
        var last = new long[b];
        var lengths = new long[b];
        for (var i = 0; i < b; i++)
        {
            var s = batch[i];
            for (var p = 0; p < t; p++)
            {
                ids[i * t + p] = p < s.Prompt.Length ? s.Prompt[p] : 0;
                rows[i * t + p] = p < s.Prompt.Length ? cache.Row(s.Blocks!, p) : cache.ScratchRow;
            }
            last[i] = i * t + s.Prompt.Length - 1;
            lengths[i] = s.Prompt.Length;
        }
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var device = Model.Device;
        var input = tensor(ids, [b, t], device: device);
        Tensor? mask = null;
        if (batch.Any(s => s.Prompt.Length != t))
        {
            // Causal within each prompt, and no query attends to another prompt's padding.
            var pos = arange(t, device: device);
            var causal = pos.unsqueeze(0).le(pos.unsqueeze(1)); // [T, T]: key <= query
            var real = pos.unsqueeze(0).lt(tensor(lengths, device: device).unsqueeze(1)); // [B, T]
            mask = causal.unsqueeze(0).logical_and(real.unsqueeze(1)).unsqueeze(1); // [B, 1, T, T]
        }
        var store = new PagedBatch(cache, tensor(rows, device: device), null, t, 0);
        var hidden = Model.Network.Hidden(input, mask, store);
        var final = hidden.reshape(b * t, -1).index_select(0, tensor(last, device: device));
        foreach (var s in batch) s.Cached = s.Prompt.Length;
        Pick(batch, Model.Network.Head(final).to(ScalarType.Float32));
    }

    /// <summary>One token for every running sequence: each attends to its own cached positions (the rest masked).</summary>
    private void DecodeStep(List<Sequence> batch)
    {
        var cache = _cache!;
        var b = batch.Count;
        var keys = batch.Max(s => s.Cached) + 1;
        // One upload: input ids, positions, the rows written, the rows each sequence attends to.
        var packed = new long[3 * b + b * keys];
        for (var i = 0; i < b; i++)
        {
            var s = batch[i];
            packed[i] = s.Last;
            packed[b + i] = s.Cached;
            packed[2 * b + i] = cache.Row(s.Blocks!, s.Cached);
            for (var p = 0; p < keys; p++)
                packed[3 * b + i * keys + p] = p <= s.Cached ? cache.Row(s.Blocks!, p) : cache.ScratchRow;
        }
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var device = Model.Device;
        var all = tensor(packed, device: device);
        Tensor logits;
        if (_kernels is not null)
        {
            logits = _kernels.BatchLogits(all, b, keys, cache);
        }
        else
        {
            var input = all[..b].view(b, 1);
            var positions = all[b..(2 * b)].view(b, 1);
            Tensor? mask = null;
            if (batch.Any(s => s.Cached + 1 != keys))
                mask = arange(keys, device: device).unsqueeze(0).le(positions); // [B, S]: a key is real up to the new position
            var store = new PagedBatch(cache, all[(2 * b)..(3 * b)], all[(3 * b)..], keys, keys - 1);
            var hidden = Model.Network.Hidden(input, mask, store, positions);
            logits = Model.Network.Head(hidden[.., 0]).to(ScalarType.Float32);
        }
        foreach (var s in batch) s.Cached++;
        Interlocked.Increment(ref _decodeSteps);
        if (b > _peakBatch) Volatile.Write(ref _peakBatch, b);
        Pick(batch, logits);
    }

    /// <summary>Picks the next token of each row of <paramref name="logits"/> [B, V]: plain greedy rows together, the rest one by one.</summary>
    private void Pick(List<Sequence> batch, Tensor logits)
    {
        var picks = new (GeneratedToken? Token, string? Finish)[batch.Count];
        var greedy = Enumerable.Range(0, batch.Count).Where(i => batch[i].State!.PlainGreedy).ToArray();
        if (_kernels is not null && greedy.Length == batch.Count)
        {
            var picked = _kernels.BatchGreedy(logits, batch.Count);
            for (var i = 0; i < batch.Count; i++)
                picks[i] = batch[i].State!.Accept(picked[i].Id, picked[i].Logprob, null);
        }
        else if (greedy.Length > 0)
        {
            var rows = greedy.Length == batch.Count ? logits : logits.index_select(0, tensor(greedy.Select(i => (long)i).ToArray(), device: logits.device));
            var ids = rows.argmax(-1, keepdim: true);
            var logp = rows.log_softmax(-1).gather(1, ids);
            // One transfer for both: ids are exact in float64.
            var host = cat([ids.to(ScalarType.Float64), logp.to(ScalarType.Float64)], 1).cpu().data<double>().ToArray();
            for (var j = 0; j < greedy.Length; j++)
                picks[greedy[j]] = batch[greedy[j]].State!.Accept((int)host[2 * j], host[2 * j + 1], null);
        }
        for (var i = 0; i < batch.Count; i++)
            if (!batch[i].State!.PlainGreedy)
                picks[i] = batch[i].State!.Step(logits[i]);
        for (var i = 0; i < batch.Count; i++)
        {
            var s = batch[i];
            var (token, finish) = picks[i];
            if (token is not null)
            {
                s.Tokens.Writer.TryWrite(token);
                s.Last = token.Id;
            }
            if (finish is not null)
            {
                s.Finish = finish;
                End(s, null);
            }
        }
    }

    /// <summary>Takes a sequence out of the batch, returns its blocks and completes its stream (with the error, if any).</summary>
    private void End(Sequence s, Exception? error)
    {
        _running.Remove(s);
        if (s.Blocks is { } blocks)
        {
            _cache!.Release(blocks);
            s.Blocks = null;
            _cachedTokensFree = _cache.FreeBlocks * _cache.BlockSize;
        }
        s.State?.Dispose();
        s.State = null;
        s.Registration.Dispose();
        s.Tokens.Writer.TryComplete(error);
    }

    public void Dispose()
    {
        lock (_incoming)
        {
            if (_stopping) return;
            _stopping = true;
        }
        _wake.Release();
        _thread.Join();
    }
}

using AspireTune.Engine.Tokenization;
using static TorchSharp.torch;

namespace AspireTune.Engine.Training;

/// <summary>
/// A tokenized example: <see cref="Trained"/> marks the ids the loss covers (position j's target is id j + 1 where
/// <c>Trained[j + 1]</c>); the first <see cref="PromptLength"/> ids are what exact match generates from, the rest
/// the completion it compares with.
/// </summary>
internal sealed record SftSequence(int[] Ids, bool[] Trained, string Completion, int PromptLength)
{
    public int[] PromptIds => Ids[..PromptLength];

    /// <summary>Positions with a target: trained ids after the first (nothing predicts the first id).</summary>
    public int TargetCount => Trained.Skip(1).Count(t => t);
}

internal static class SftData
{
    /// <summary>
    /// Tokenizes each example segment by segment: BOS where the family uses one, each segment's ids on their own as they
    /// follow the text before it (<see cref="ITokenizer.EncodeCompletion"/>: as serving encodes a prompt and then
    /// generates after it, so no token spans two segments), and the end-of-text token
    /// after the last segment, trained when that segment is. Over <paramref name="maxLength"/>, see <see cref="Window"/>.
    /// </summary>
    public static List<SftSequence> Encode(IReadOnlyList<SftExample> examples, ITokenizer tokenizer, int maxLength, string split)
    {
        var eos = tokenizer.EosTokenId ?? throw new InvalidOperationException("the tokenizer has no end-of-text token to end completions with");
        var result = new List<SftSequence>(examples.Count);
        for (var i = 0; i < examples.Count; i++)
        {
            var ex = examples[i];
            var segments = ex.Segments;
            if (segments[^1].Trained && string.IsNullOrEmpty(ex.Completion))
                throw new ArgumentException($"{split} example {i + 1}: the completion is empty (nothing to learn)");
            if (!segments.Any(s => s.Trained))
                throw new ArgumentException($"{split} example {i + 1}: no segment is trained (nothing to learn)");
            if (segments.Any(s => s.Trained && s.Text.Length == 0))
                throw new ArgumentException($"{split} example {i + 1}: a trained segment is empty");
            // A segment's ids as they follow the text before it (SentencePiece marks only the start of a text). The
            // context handed over is the nearest non-empty segment before it, not the whole prefix: that is what decides
            // how the boundary encodes, and it keeps a line of many turns linear in its length.
            var encoded = new List<IReadOnlyList<int>>(segments.Count);
            string? before = null;
            foreach (var s in segments)
            {
                encoded.Add(before is null ? tokenizer.Encode(s.Text) : tokenizer.EncodeCompletion(before, s.Text));
                if (s.Text.Length > 0)
                    before = s.Text;
            }
            var ids = new List<int>();
            if (tokenizer.BosTokenId is { } bos) ids.Add(bos);
            foreach (var e in encoded) ids.AddRange(e);
            ids.Add(eos);
            var (from, to, trained) = Layout([.. segments.Select((s, k) => (encoded[k].Count, s.Trained))], tokenizer.BosTokenId is not null, maxLength);
            var promptLength = Math.Clamp(ids.Count - 1 - encoded[^1].Count - from, 0, to - from);
            result.Add(new SftSequence([.. ids[from..to]], trained, ex.Completion, promptLength));
        }
        return result;
    }

    /// <summary>
    /// Which ids of an example of segments of <paramref name="segments"/> ids (plus BOS when <paramref name="bos"/>, and
    /// the end-of-text id after the last) are kept within <paramref name="maxLength"/> (see <see cref="Window"/>), and
    /// which kept ids are trained: a trained segment that lost its beginning answers nothing any more, so what is left
    /// of it is context. The quality gate counts what truncation costs with it from token counts alone.
    /// </summary>
    internal static (int From, int To, bool[] Trained) Layout(IReadOnlyList<(int Count, bool Trained)> segments, bool bos, int maxLength)
    {
        var starts = new List<(int Start, bool Trained)>();
        var trained = new List<bool>();
        if (bos) trained.Add(false);
        foreach (var (count, isTrained) in segments)
        {
            // BOS belongs to the first segment, the end-of-text id to the last.
            starts.Add((starts.Count == 0 ? 0 : trained.Count, isTrained));
            trained.AddRange(Enumerable.Repeat(isTrained, count));
        }
        trained.Add(segments[^1].Trained);
        var (from, to) = Window(starts, trained.Count, maxLength);
        for (var s = 0; s < starts.Count; s++)
            if (starts[s].Trained && starts[s].Start < from)
                for (var j = from; j < (s + 1 < starts.Count ? starts[s + 1].Start : trained.Count); j++)
                    trained[j] = false;
        return (from, to, [.. trained[from..to]]);
    }

    /// <summary>
    /// The ids [From, To) an example of <paramref name="length"/> ids keeps within <paramref name="maxLength"/>: all of
    /// them when they fit. Else the untrained ids after the last trained segment go first (nothing after it is learned),
    /// then the beginning: up to the first untrained segment (a turn boundary) at or after the excess when there is one
    /// before the last trained segment, else exactly the excess. A last trained segment longer than
    /// <c>maxLength - 1</c> keeps its beginning and one id before it.
    /// </summary>
    /// <param name="segments">Where each segment starts (the first at 0) and whether it is trained; at least one is.</param>
    /// <param name="length">Ids of the whole example.</param>
    /// <param name="maxLength">Most ids kept.</param>
    internal static (int From, int To) Window(IReadOnlyList<(int Start, bool Trained)> segments, int length, int maxLength)
    {
        if (length <= maxLength) return (0, length);
        var last = segments.Count - 1;
        while (!segments[last].Trained) last--;
        var (lastStart, end) = (segments[last].Start, last + 1 < segments.Count ? segments[last + 1].Start : length);
        if (end <= maxLength) return (0, end);
        if (end - lastStart > maxLength - 1) return (Math.Max(0, lastStart - 1), lastStart + maxLength - 1);
        var excess = end - maxLength;
        var cut = segments.Take(last).Where(s => !s.Trained && s.Start >= excess).Select(s => s.Start).DefaultIfEmpty(excess).Min();
        return (cut, end);
    }

    /// <summary>Right-padded ids [B, T] and next-token targets [B, T] (-100 where the next id is untrained, on padding and the last position).</summary>
    public static (Tensor Ids, Tensor Targets, int Tokens, int TargetCount) Collate(IReadOnlyList<SftSequence> batch, int padId, Device device)
    {
        var t = batch.Max(s => s.Ids.Length);
        var ids = new long[batch.Count * t];
        var targets = new long[batch.Count * t];
        Array.Fill(ids, padId);
        Array.Fill(targets, -100);
        int tokens = 0, count = 0;
        for (var b = 0; b < batch.Count; b++)
        {
            var s = batch[b];
            for (var j = 0; j < s.Ids.Length; j++) ids[b * t + j] = s.Ids[j];
            tokens += s.Ids.Length;
            count += Targets(s, targets, b * t);
        }
        // Right padding under a causal mask never reaches a real token, so no attention mask is needed.
        return (tensor(ids, [batch.Count, t], device: device), tensor(targets, [batch.Count, t], device: device), tokens, count);
    }

    /// <summary>
    /// Packs sequences into rows of at most <paramref name="rowLength"/> tokens, longest first into the first row
    /// with room (first-fit decreasing): a fixed packing, whose rows the trainer shuffles every epoch.
    /// </summary>
    public static List<List<SftSequence>> Pack(IReadOnlyList<SftSequence> sequences, int rowLength)
    {
        var rows = new List<List<SftSequence>>();
        var room = new List<int>();
        foreach (var s in sequences.OrderByDescending(s => s.Ids.Length).ThenBy(s => s.Completion, StringComparer.Ordinal))
        {
            var i = room.FindIndex(r => r >= s.Ids.Length);
            if (i < 0)
            {
                rows.Add([]);
                room.Add(rowLength);
                i = rows.Count - 1;
            }
            rows[i].Add(s);
            room[i] -= s.Ids.Length;
        }
        return rows;
    }

    /// <summary>
    /// Packed rows as ids [B, T] (right-padded), targets [B, T] (-100 on untrained ids, padding and each example's last
    /// position), positions [B, T] restarting at 0 for every example, and the boolean attention mask [B, 1, T, T]:
    /// causal within each example, nothing across examples (padding attends only to itself).
    /// </summary>
    public static (Tensor Ids, Tensor Targets, Tensor Positions, Tensor Mask, int Tokens, int TargetCount) CollatePacked(
        IReadOnlyList<IReadOnlyList<SftSequence>> rows, int padId, Device device)
    {
        var t = rows.Max(r => r.Sum(s => s.Ids.Length));
        var n = rows.Count * t;
        var ids = new long[n];
        var targets = new long[n];
        var positions = new long[n];
        var segment = new long[n];
        Array.Fill(ids, padId);
        Array.Fill(targets, -100);
        int tokens = 0, count = 0;
        for (var b = 0; b < rows.Count; b++)
        {
            var at = b * t;
            var seg = 0;
            foreach (var s in rows[b])
            {
                seg++;
                for (var j = 0; j < s.Ids.Length; j++)
                {
                    ids[at + j] = s.Ids[j];
                    positions[at + j] = j;
                    segment[at + j] = seg;
                }
                count += Targets(s, targets, at);
                tokens += s.Ids.Length;
                at += s.Ids.Length;
            }
            // Padding: its own segment per position, so each pad token attends to itself only (no empty softmax row).
            for (var j = at; j < (b + 1) * t; j++)
            {
                positions[j] = 0;
                segment[j] = -1 - (j - b * t);
            }
        }
        using var seg3 = tensor(segment, [rows.Count, t], device: device);
        using var same = seg3.unsqueeze(2).eq(seg3.unsqueeze(1));
        using var causal = ones(t, t, dtype: ScalarType.Bool, device: device).tril();
        var mask = same.logical_and(causal).unsqueeze(1);
        return (tensor(ids, [rows.Count, t], device: device), tensor(targets, [rows.Count, t], device: device),
            tensor(positions, [rows.Count, t], device: device), mask, tokens, count);
    }

    /// <summary>Writes the example's next-token targets from <paramref name="at"/>: position j predicts id j + 1 where that id is trained.</summary>
    private static int Targets(SftSequence s, long[] targets, int at)
    {
        var count = 0;
        for (var j = 0; j < s.Ids.Length - 1; j++)
            if (s.Trained[j + 1])
            {
                targets[at + j] = s.Ids[j + 1];
                count++;
            }
        return count;
    }
}

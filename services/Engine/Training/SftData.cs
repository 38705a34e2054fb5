using AspireTune.Engine.Tokenization;
using static TorchSharp.torch;

namespace AspireTune.Engine.Training;

/// <summary>A tokenized example: the first <see cref="PromptLength"/> ids carry no loss.</summary>
internal sealed record SftSequence(int[] Ids, int PromptLength, string Completion, int[] PromptIds);

internal static class SftData
{
    public static List<SftSequence> Encode(IReadOnlyList<SftExample> examples, ITokenizer tokenizer, int maxLength, string split)
    {
        var eos = tokenizer.EosTokenId ?? throw new InvalidOperationException("the tokenizer has no end-of-text token to end completions with");
        var result = new List<SftSequence>(examples.Count);
        for (var i = 0; i < examples.Count; i++)
        {
            var ex = examples[i];
            if (string.IsNullOrEmpty(ex.Completion))
                throw new ArgumentException($"{split} example {i + 1}: the completion is empty (nothing to learn)");
            var prompt = new List<int>();
            if (tokenizer.BosTokenId is { } bos) prompt.Add(bos);
            prompt.AddRange(tokenizer.Encode(ex.Prompt ?? ""));
            var completion = tokenizer.EncodeCompletion(ex.Prompt ?? "", ex.Completion).Append(eos).ToList();
            if (completion.Count > maxLength - 1) completion = completion[..(maxLength - 1)];
            // Long prompts lose their beginning, so that the completion, which carries the loss, survives.
            var room = maxLength - completion.Count;
            var keptPrompt = prompt.Count > room ? prompt[^room..] : prompt;
            result.Add(new SftSequence([.. keptPrompt, .. completion], keptPrompt.Count, ex.Completion, [.. keptPrompt]));
        }
        return result;
    }

    /// <summary>Right-padded ids [B, T] and next-token targets [B, T] (-100 on prompt, padding and the last position).</summary>
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
            // Position j predicts token j + 1; only completion tokens are targets.
            for (var j = Math.Max(0, s.PromptLength - 1); j < s.Ids.Length - 1; j++)
            {
                targets[b * t + j] = s.Ids[j + 1];
                count++;
            }
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
    /// Packed rows as ids [B, T] (right-padded), targets [B, T] (-100 on prompts, padding and each example's last
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
                for (var j = Math.Max(0, s.PromptLength - 1); j < s.Ids.Length - 1; j++)
                {
                    targets[at + j] = s.Ids[j + 1];
                    count++;
                }
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
}

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
            var completion = tokenizer.Encode(ex.Completion).Append(eos).ToList();
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
}

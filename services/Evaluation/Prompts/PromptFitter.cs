using AspireTune.Evaluation.Retrieval;

namespace AspireTune.Evaluation.Prompts;

/// <summary>A rendered prompt that fits its model, and what had to give way for it to fit.</summary>
public sealed record FittedPrompt(string? System, string User, int Tokens, int? ExamplesShown, int? ExamplesRetrieved, bool InputTruncated);

/// <summary>The prompt does not fit even with no examples and an empty input: the template itself is too long.</summary>
public sealed class PromptTooLongException(string message) : Exception(message);

/// <summary>
/// Fits a prompt into a token budget (the model's context minus the output budget): retrieved examples and
/// passages are dropped from the least similar end first, and only when none is left is the input cut (at a word
/// boundary, keeping its start). The count comes from the caller: the served model's tokenizer, or an estimate.
/// </summary>
public static class PromptFitter
{
    public delegate ValueTask<int> CountTokens(string? system, string user, CancellationToken ct);

    private const int MaxInputCuts = 8;

    public static async Task<FittedPrompt> FitAsync(CompiledPrompt prompt, string input, RetrievedContext? retrieved, int budget, CountTokens count, CancellationToken ct)
    {
        var examples = retrieved?.Examples ?? [];
        var passages = retrieved?.Passages ?? [];
        int? retrievedCount = prompt.UsesRetrieval ? examples.Count : null;
        int e = examples.Count, p = passages.Count, cuts = 0;
        var text = input;
        (string? System, string User, int Tokens)? last = null;
        while (true)
        {
            var (system, user) = await PromptTemplates.RenderAsync(prompt, text, examples.Take(e).ToList(), passages.Take(p).ToList(), ct);
            // A template that shows examples but not passages (or the reverse) renders the same when the other shrinks.
            var tokens = last is { } l && l.System == system && l.User == user ? l.Tokens : await count(system, user, ct);
            last = (system, user, tokens);
            if (tokens <= budget)
                return new FittedPrompt(system, user, tokens, prompt.UsesRetrieval ? e : null, retrievedCount, text.Length < input.Length);
            if (e > 0 || p > 0)
            {
                // Drop from the longer list, so examples and passages shrink together.
                if (e >= p) e--; else p--;
                continue;
            }
            if (text.Length == 0 || ++cuts > MaxInputCuts)
                throw new PromptTooLongException($"The prompt is {tokens} tokens with no examples and the input cut to {text.Length} characters; the model takes {budget} (its context minus the output budget).");
            // Cut the share of characters the excess is of the whole prompt, a little more, at a word boundary.
            var excess = tokens - budget;
            var charsPerToken = (double)(user.Length + (system?.Length ?? 0)) / tokens;
            var keep = Math.Max(0, text.Length - (int)Math.Ceiling(excess * charsPerToken * 1.1) - 1);
            var space = text.LastIndexOf(' ', Math.Max(0, keep - 1));
            text = text[..(space > keep / 2 ? space : keep)];
        }
    }
}

using System.Runtime.CompilerServices;
using AspireTune.Engine.Tokenization;

namespace AspireTune.Engine.Generation;

/// <summary>
/// Restricts which token may come next (a logit mask), step by step. One instance follows one generation:
/// <see cref="Allowed"/> before each step, <see cref="Accept"/> with the token picked.
/// </summary>
public interface ITokenConstraint
{
    /// <summary>Marks the tokens allowed next (true) in <paramref name="allowed"/>, one entry per vocabulary id; false where not.</summary>
    void Allowed(bool[] allowed);

    void Accept(int tokenId);

    /// <summary>The output is complete: generation ends here (finish reason <c>stop</c>).</summary>
    bool IsComplete { get; }
}

/// <summary>
/// The raw bytes of every token of a vocabulary in a byte trie, built once per tokenizer, so a mask is one walk
/// in which tokens sharing a prefix share the automaton steps for it. The end-of-text token is left out: a
/// constrained generation ends when its grammar is complete, not when the model says so.
/// </summary>
public sealed class TokenTrie
{
    private static readonly ConditionalWeakTable<ITokenizer, TokenTrie> Cache = new();

    internal sealed class Node
    {
        public readonly List<(byte Byte, Node Child)> Children = [];
        public readonly List<int> Tokens = [];
    }

    internal Node Root { get; } = new();

    /// <summary>Vocabulary size: the length of a mask.</summary>
    public int Count { get; }

    private TokenTrie(ITokenizer tokenizer, int vocabularySize)
    {
        Count = vocabularySize;
        for (var id = 0; id < Math.Min(tokenizer.Count, vocabularySize); id++)
        {
            if (id == tokenizer.EosTokenId)
                continue;
            var bytes = tokenizer.TokenBytes(id);
            if (bytes.Length == 0)
                continue;
            var node = Root;
            foreach (var b in bytes)
            {
                var next = node.Children.FirstOrDefault(c => c.Byte == b).Child;
                if (next is null)
                {
                    next = new Node();
                    node.Children.Add((b, next));
                }
                node = next;
            }
            node.Tokens.Add(id);
        }
    }

    public static TokenTrie For(ITokenizer tokenizer, int vocabularySize) =>
        Cache.GetValue(tokenizer, t => new TokenTrie(t, vocabularySize));
}

/// <summary>JSON output that a <see cref="JsonGrammar"/> accepts, token by token.</summary>
public sealed class JsonTokenConstraint(JsonGrammar grammar, TokenTrie trie, ITokenizer tokenizer) : ITokenConstraint
{
    private JsonGrammarState _state = grammar.Start();

    public bool IsComplete => _state.IsComplete;

    public void Allowed(bool[] allowed) => Mask(trie, _state, allowed);

    /// <summary>Marks exactly the tokens whose every byte <paramref name="state"/> accepts.</summary>
    public static void Mask(TokenTrie trie, JsonGrammarState state, bool[] allowed)
    {
        Array.Clear(allowed);
        Walk(trie.Root, state, allowed);
    }

    private static void Walk(TokenTrie.Node node, JsonGrammarState state, bool[] allowed)
    {
        foreach (var (b, child) in node.Children)
        {
            if (state.Advance([b]) is not { } next)
                continue;
            foreach (var id in child.Tokens)
                allowed[id] = true;
            // Nothing may follow a complete value, so no longer token through this byte can be allowed.
            if (!next.IsComplete)
                Walk(child, next, allowed);
        }
    }

    public void Accept(int tokenId) =>
        _state = _state.Advance(tokenizer.TokenBytes(tokenId))
            ?? throw new InvalidOperationException($"token {tokenId} is not allowed by the grammar here; the mask should have excluded it");
}

/// <summary>
/// A grammar that applies only when the output starts with a trigger (llama.cpp's lazy grammars): the model
/// may answer in free text, or write <c>trigger</c> and then exactly what <c>grammar</c> accepts. Used for
/// <c>tool_choice: auto</c>, where the trigger opens a tool call. With <c>required</c>, the trigger must be written
/// (a model's own call prefix under <c>tool_choice: required</c>): no free text, no early end.
/// </summary>
public sealed class TriggeredJsonConstraint(byte[] trigger, JsonGrammar grammar, TokenTrie trie, ITokenizer tokenizer, bool required = false) : ITokenConstraint
{
    private readonly List<byte> _prefix = [];
    private JsonGrammarState? _state;
    private bool _free;

    /// <summary>Whether the output took the trigger (and so is a grammar-constrained call).</summary>
    public bool Triggered => _state is not null;

    public bool IsComplete => _state?.IsComplete ?? false;

    public void Allowed(bool[] allowed)
    {
        if (_free)
        {
            Array.Fill(allowed, true);
            return;
        }
        if (_state is not null)
        {
            JsonTokenConstraint.Mask(trie, _state, allowed);
            return;
        }
        // Undecided: a token may stay within the trigger, leave it (free text from then on), or complete it and go on in the grammar.
        for (var id = 0; id < allowed.Length; id++)
        {
            var bytes = id < tokenizer.Count ? tokenizer.TokenBytes(id) : [];
            allowed[id] = Classify(bytes, out var rest) switch
            {
                Outcome.Within => bytes.Length > 0,
                Outcome.Diverges => bytes.Length > 0 && !required,
                _ => grammar.Start().Advance(rest) is not null,
            };
        }
        if (!required && tokenizer.EosTokenId is { } end && end < allowed.Length)
            allowed[end] = true;
    }

    private enum Outcome { Within, Diverges, Completes }

    private Outcome Classify(byte[] bytes, out byte[] rest)
    {
        rest = [];
        var all = _prefix.Concat(bytes).ToArray();
        var shared = 0;
        while (shared < all.Length && shared < trigger.Length && all[shared] == trigger[shared])
            shared++;
        if (shared == all.Length)
            return Outcome.Within;
        if (shared < trigger.Length)
            return Outcome.Diverges;
        rest = all[trigger.Length..];
        return Outcome.Completes;
    }

    public void Accept(int tokenId)
    {
        var bytes = tokenizer.TokenBytes(tokenId);
        if (_free)
            return;
        if (_state is not null)
        {
            _state = _state.Advance(bytes) ?? throw new InvalidOperationException($"token {tokenId} is not allowed by the grammar here");
            return;
        }
        switch (Classify(bytes, out var rest))
        {
            case Outcome.Within:
                _prefix.AddRange(bytes);
                if (_prefix.Count == trigger.Length)
                    _state = grammar.Start();
                break;
            case Outcome.Diverges:
                _free = true;
                break;
            case Outcome.Completes:
                _state = grammar.Start().Advance(rest) ?? throw new InvalidOperationException($"token {tokenId} is not allowed by the grammar here");
                break;
        }
    }
}

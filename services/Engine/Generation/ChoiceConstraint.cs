using System.Text;
using AspireTune.Engine.Tokenization;

namespace AspireTune.Engine.Generation;

/// <summary>
/// Output that is exactly one of a set of strings (vLLM's <c>guided_choice</c>; the labels of a classification): a
/// byte automaton over the choices, applied token by token like <see cref="JsonTokenConstraint"/>. A token is allowed
/// when its bytes keep the output a prefix of some choice. The output is complete once it equals a choice that no
/// other choice extends; where one does (<c>Democratic</c>, <c>Democratic-Republican</c>) the end-of-text token is
/// allowed too, so the model decides whether to stop.
/// </summary>
public sealed class ChoiceConstraint : ITokenConstraint
{
    private readonly byte[][] _choices;
    private readonly TokenTrie _trie;
    private readonly ITokenizer _tokenizer;
    private readonly List<byte> _written = [];
    private bool _ended;

    public ChoiceConstraint(IReadOnlyList<string> choices, TokenTrie trie, ITokenizer tokenizer)
    {
        if (choices.Count == 0 || choices.Any(string.IsNullOrEmpty))
            throw new ArgumentException("A choice constraint needs at least one non-empty choice.", nameof(choices));
        _choices = choices.Select(Encoding.UTF8.GetBytes).ToArray();
        _trie = trie;
        _tokenizer = tokenizer;
    }

    public bool IsComplete => _ended || (IsChoice() && !_choices.Any(c => c.Length > _written.Count && Extends(c)));

    public void Allowed(bool[] allowed)
    {
        Array.Clear(allowed);
        Walk(_trie.Root, _written.Count, _choices.Where(Extends).ToList(), allowed);
        if (IsChoice() && _tokenizer.EosTokenId is { } end && end < allowed.Length)
            allowed[end] = true;
    }

    public void Accept(int tokenId)
    {
        if (tokenId == _tokenizer.EosTokenId)
        {
            _ended = IsChoice() ? true : throw new InvalidOperationException("the output ended before it was one of the choices");
            return;
        }
        _written.AddRange(_tokenizer.TokenBytes(tokenId));
        if (!_choices.Any(Extends))
            throw new InvalidOperationException($"token {tokenId} leads away from every choice; the mask should have excluded it");
    }

    /// <summary>Marks the tokens whose bytes, after what is written, stay within one of <paramref name="open"/> (the choices the path so far matches).</summary>
    private static void Walk(TokenTrie.Node node, int depth, List<byte[]> open, bool[] allowed)
    {
        foreach (var (b, child) in node.Children)
        {
            var still = open.Where(c => c.Length > depth && c[depth] == b).ToList();
            if (still.Count == 0)
                continue;
            foreach (var id in child.Tokens)
                if (id < allowed.Length)
                    allowed[id] = true;
            Walk(child, depth + 1, still, allowed);
        }
    }

    /// <summary>Whether the choice starts with what is written (checked up to the written length).</summary>
    private bool Extends(byte[] choice)
    {
        if (choice.Length < _written.Count)
            return false;
        for (var i = 0; i < _written.Count; i++)
            if (choice[i] != _written[i])
                return false;
        return true;
    }

    private bool IsChoice() => _choices.Any(c => c.Length == _written.Count && Extends(c));
}

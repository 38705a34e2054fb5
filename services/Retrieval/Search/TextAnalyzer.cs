namespace AspireTune.Retrieval.Search;

/// <summary>The one tokenizer behind keyword search and the local embeddings: lower-cased runs of letters and digits.</summary>
internal static class TextAnalyzer
{
    // Function words carry little meaning: they are down-weighted in embeddings and skipped by BM25.
    private static readonly HashSet<string> StopWords =
    [
        "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "has", "have", "he", "her", "his", "i", "if",
        "in", "into", "is", "it", "its", "me", "my", "no", "not", "of", "on", "or", "our", "she", "so", "that", "the", "their",
        "them", "then", "there", "these", "they", "this", "to", "was", "we", "were", "what", "when", "which", "who", "will",
        "with", "you", "your",
    ];

    /// <summary>Longest token; a longer run of letters and digits becomes several tokens, so no input makes one huge key.</summary>
    public const int MaxTokenChars = 64;

    public static bool IsStopWord(string token) => StopWords.Contains(token);

    public static List<string> Tokens(string text)
    {
        var tokens = new List<string>();
        var start = -1;
        for (var i = 0; i <= text.Length; i++)
        {
            var inWord = i < text.Length && char.IsLetterOrDigit(text[i]);
            if (inWord && start < 0)
                start = i;
            else if (start >= 0 && (!inWord || i - start == MaxTokenChars))
            {
                tokens.Add(text[start..i].ToLowerInvariant());
                start = inWord ? i : -1;
            }
        }
        return tokens;
    }

    /// <summary>FNV-1a, 64-bit: stable across processes and machines, unlike <see cref="string.GetHashCode()"/>.</summary>
    public static ulong Hash(ReadOnlySpan<char> value, ulong seed = 14695981039346656037UL)
    {
        var hash = seed;
        foreach (var c in value)
        {
            hash ^= c;
            hash *= 1099511628211UL;
        }
        return hash;
    }
}

namespace AspireTune.Retrieval.Search;

/// <summary>Okapi BM25 (k1 = 1.2, b = 0.75) over one collection's chunk texts, for the keyword half of hybrid search.</summary>
internal sealed class Bm25Index
{
    private const double K1 = 1.2;
    private const double B = 0.75;
    private readonly Dictionary<string, List<(int Doc, int Tf)>> _postings = new(StringComparer.Ordinal);
    private readonly int[] _lengths;
    private readonly double _averageLength;

    public Bm25Index(IReadOnlyList<string> ids, IReadOnlyList<string> texts)
    {
        Ids = ids;
        _lengths = new int[texts.Count];
        for (var d = 0; d < texts.Count; d++)
        {
            var tokens = TextAnalyzer.Tokens(texts[d]).Where(t => !TextAnalyzer.IsStopWord(t)).ToList();
            _lengths[d] = tokens.Count;
            foreach (var group in tokens.GroupBy(t => t))
            {
                if (!_postings.TryGetValue(group.Key, out var list))
                    _postings[group.Key] = list = [];
                list.Add((d, group.Count()));
            }
        }
        _averageLength = texts.Count == 0 ? 1 : Math.Max(1, _lengths.Average());
    }

    public IReadOnlyList<string> Ids { get; }

    /// <summary>Documents with a positive score, best first, at most <paramref name="limit"/> that pass <paramref name="accept"/>.</summary>
    public List<(int Doc, double Score)> Search(string query, int limit, Func<int, bool>? accept = null)
    {
        var scores = new Dictionary<int, double>();
        var n = _lengths.Length;
        foreach (var term in TextAnalyzer.Tokens(query).Where(t => !TextAnalyzer.IsStopWord(t)).Distinct())
        {
            if (!_postings.TryGetValue(term, out var postings))
                continue;
            var idf = Math.Log(1 + (n - postings.Count + 0.5) / (postings.Count + 0.5));
            foreach (var (doc, tf) in postings)
            {
                var norm = tf * (K1 + 1) / (tf + K1 * (1 - B + B * _lengths[doc] / _averageLength));
                scores[doc] = scores.GetValueOrDefault(doc) + idf * norm;
            }
        }
        return scores.Where(s => accept is null || accept(s.Key))
            .OrderByDescending(s => s.Value).ThenBy(s => s.Key)
            .Take(limit).Select(s => (s.Key, s.Value)).ToList();
    }
}

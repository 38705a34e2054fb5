using System.Text;

namespace AspireTune.Analysis;

/// <summary>
/// Near-duplicate detection by MinHash over word 3-shingles with locality-sensitive hashing: 128 hash
/// functions in 32 bands of 4 rows, so pairs at Jaccard 0.9 become candidates with probability above
/// 0.9999 and pairs at 0.3 rarely; every candidate is then confirmed with the exact Jaccard similarity of
/// the two shingle sets, so the threshold is exact, not estimated.
/// </summary>
public sealed class NearDuplicateIndex(double threshold)
{
    public const int Permutations = 128;
    public const int Bands = 32;
    public const int RowsPerBand = Permutations / Bands;
    public const int ShingleWords = 3;
    private const ulong MersennePrime = (1UL << 61) - 1;
    private static readonly (ulong A, ulong B)[] Coefficients = CreateCoefficients();

    private readonly Dictionary<(int Band, ulong Key), List<int>> _buckets = [];
    private readonly List<HashSet<ulong>> _sets = [];

    public double Threshold { get; } = threshold;

    /// <summary>How this index decides, for the quality report.</summary>
    public string Method =>
        $"MinHash ({Permutations} permutations, LSH {Bands} bands x {RowsPerBand} rows) over lower-cased word {ShingleWords}-shingles; candidates confirmed by exact Jaccard >= {Threshold:0.##}";

    /// <summary>The best match already in the index at or above the threshold, as (item index, Jaccard).</summary>
    public (int Index, double Jaccard)? FindMatch(string text) => FindMatch(Shingles(text));

    /// <summary>Adds a text; returns its index.</summary>
    public int Add(string text) => Add(Shingles(text));

    public (int Index, double Jaccard)? FindMatch(HashSet<ulong> shingles)
    {
        (int, double)? best = null;
        var signature = Signature(shingles);
        var seen = new HashSet<int>();
        for (var band = 0; band < Bands; band++)
        {
            if (!_buckets.TryGetValue((band, BandKey(signature, band)), out var candidates))
                continue;
            foreach (var candidate in candidates)
            {
                if (!seen.Add(candidate))
                    continue;
                var jaccard = Jaccard(shingles, _sets[candidate]);
                if (jaccard >= Threshold && (best is null || jaccard > best.Value.Item2))
                    best = (candidate, jaccard);
            }
        }
        return best;
    }

    public int Add(HashSet<ulong> shingles)
    {
        var index = _sets.Count;
        _sets.Add(shingles);
        var signature = Signature(shingles);
        for (var band = 0; band < Bands; band++)
        {
            var key = (band, BandKey(signature, band));
            if (!_buckets.TryGetValue(key, out var list))
                _buckets[key] = list = [];
            list.Add(index);
        }
        return index;
    }

    /// <summary>Lower-cased words (letters and digits), hashed in overlapping windows of three.</summary>
    public static HashSet<ulong> Shingles(string text)
    {
        var words = Normalize(text).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var set = new HashSet<ulong>();
        if (words.Length < ShingleWords)
        {
            set.Add(Fnv1a(string.Join(' ', words)));
            return set;
        }
        for (var i = 0; i + ShingleWords <= words.Length; i++)
            set.Add(Fnv1a(string.Join(' ', words, i, ShingleWords)));
        return set;
    }

    /// <summary>Lower case, letters and digits only, single spaces: the form exact duplicates are compared in.</summary>
    public static string Normalize(string text)
    {
        var builder = new StringBuilder(text.Length);
        var space = false;
        foreach (var c in text)
        {
            if (char.IsLetterOrDigit(c))
            {
                if (space && builder.Length > 0)
                    builder.Append(' ');
                builder.Append(char.ToLowerInvariant(c));
                space = false;
            }
            else
                space = true;
        }
        return builder.ToString();
    }

    public static double Jaccard(HashSet<ulong> a, HashSet<ulong> b)
    {
        if (a.Count == 0 && b.Count == 0)
            return 1;
        var (small, large) = a.Count <= b.Count ? (a, b) : (b, a);
        var intersection = small.Count(large.Contains);
        return (double)intersection / (a.Count + b.Count - intersection);
    }

    private static ulong[] Signature(HashSet<ulong> shingles)
    {
        var signature = new ulong[Permutations];
        Array.Fill(signature, ulong.MaxValue);
        foreach (var shingle in shingles)
        {
            var x = shingle % MersennePrime;
            for (var i = 0; i < Permutations; i++)
            {
                var value = (ulong)(((UInt128)Coefficients[i].A * x + Coefficients[i].B) % MersennePrime);
                if (value < signature[i])
                    signature[i] = value;
            }
        }
        return signature;
    }

    private static ulong BandKey(ulong[] signature, int band)
    {
        var key = 14695981039346656037UL;
        for (var r = 0; r < RowsPerBand; r++)
            key = (key ^ signature[band * RowsPerBand + r]) * 1099511628211UL;
        return key;
    }

    private static ulong Fnv1a(string text)
    {
        var hash = 14695981039346656037UL;
        foreach (var b in Encoding.UTF8.GetBytes(text))
            hash = (hash ^ b) * 1099511628211UL;
        return hash;
    }

    private static (ulong, ulong)[] CreateCoefficients()
    {
        // Fixed seed: the same data must give the same report on every worker.
        var random = new Random(20240601);
        return Enumerable.Range(0, Permutations)
            .Select(_ => ((ulong)random.NextInt64(1, (long)MersennePrime), (ulong)random.NextInt64(0, (long)MersennePrime)))
            .ToArray();
    }
}

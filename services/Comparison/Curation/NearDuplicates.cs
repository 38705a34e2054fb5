using System.IO.Hashing;
using System.Text;

namespace AspireTune.Comparison.Curation;

/// <summary>
/// Near-duplicate detection by MinHash over word 3-shingles with LSH banding, confirmed by the exact Jaccard
/// similarity of the shingle sets. "Near" means Jaccard &gt;= <see cref="Threshold"/> (default 0.9: the same text
/// with a few words changed, re-quoted or re-signed, as mailing lists and scraped corpora are full of).
/// </summary>
public sealed class NearDuplicates(double threshold = 0.9, int bands = 16, int rowsPerBand = 4)
{
    public double Threshold { get; } = threshold;
    private int Hashes => bands * rowsPerBand;

    /// <summary>Normalised text used by every comparison: lower case, whitespace collapsed.</summary>
    public static string Normalize(string text)
    {
        var sb = new StringBuilder(text.Length);
        var space = false;
        foreach (var c in text)
        {
            if (char.IsWhiteSpace(c))
            {
                space = sb.Length > 0;
                continue;
            }
            if (space)
                sb.Append(' ');
            space = false;
            sb.Append(char.ToLowerInvariant(c));
        }
        return sb.ToString();
    }

    public static HashSet<ulong> Shingles(string normalized)
    {
        var words = normalized.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var set = new HashSet<ulong>();
        if (words.Length < 3)
        {
            set.Add(XxHash64.HashToUInt64(Encoding.UTF8.GetBytes(normalized)));
            return set;
        }
        for (var i = 0; i + 3 <= words.Length; i++)
            set.Add(XxHash64.HashToUInt64(Encoding.UTF8.GetBytes($"{words[i]} {words[i + 1]} {words[i + 2]}")));
        return set;
    }

    public static double Jaccard(HashSet<ulong> a, HashSet<ulong> b)
    {
        if (a.Count == 0 && b.Count == 0)
            return 1;
        var (small, large) = a.Count <= b.Count ? (a, b) : (b, a);
        var intersection = small.Count(large.Contains);
        return intersection / (double)(a.Count + b.Count - intersection);
    }

    /// <summary>
    /// Pairs (earlier, later) of indices whose texts are near-duplicates; each later index appears at most once,
    /// matched to the earliest text it duplicates.
    /// </summary>
    public List<(int Kept, int Duplicate, double Similarity)> Find(IReadOnlyList<string> texts)
    {
        var shingles = texts.Select(t => Shingles(Normalize(t))).ToArray();
        var buckets = new Dictionary<(int Band, ulong Key), List<int>>();
        var result = new List<(int, int, double)>();
        var isDuplicate = new bool[texts.Count];
        for (var i = 0; i < texts.Count; i++)
        {
            var signature = Signature(shingles[i]);
            var candidates = new SortedSet<int>();
            for (var band = 0; band < bands; band++)
            {
                var key = BandKey(signature, band);
                if (!buckets.TryGetValue((band, key), out var members))
                    buckets[(band, key)] = members = [];
                foreach (var m in members)
                    candidates.Add(m);
                members.Add(i);
            }
            foreach (var j in candidates)
            {
                if (isDuplicate[j])
                    continue;
                var similarity = Jaccard(shingles[i], shingles[j]);
                if (similarity >= Threshold)
                {
                    result.Add((j, i, similarity));
                    isDuplicate[i] = true;
                    break;
                }
            }
        }
        return result;
    }

    private ulong[] Signature(HashSet<ulong> shingles)
    {
        var signature = new ulong[Hashes];
        Array.Fill(signature, ulong.MaxValue);
        foreach (var s in shingles)
            for (var h = 0; h < Hashes; h++)
            {
                // Independent hash functions from one 64-bit hash: multiply-xorshift with per-row odd seeds.
                var x = (s ^ (0x9E3779B97F4A7C15UL * (ulong)(h + 1))) * 0xBF58476D1CE4E5B9UL;
                x ^= x >> 31;
                if (x < signature[h])
                    signature[h] = x;
            }
        return signature;
    }

    private ulong BandKey(ulong[] signature, int band)
    {
        ulong key = 1469598103934665603UL;
        for (var r = 0; r < rowsPerBand; r++)
            key = (key ^ signature[band * rowsPerBand + r]) * 1099511628211UL;
        return key;
    }
}

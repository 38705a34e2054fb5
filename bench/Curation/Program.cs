using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using AspireTune.Analysis;

// Near-duplicate removal of the quality gate (MinHash + LSH, candidates confirmed by exact Jaccard) against
// the exhaustive method it replaces (exact Jaccard of every pair), on a synthetic set with planted near
// duplicates: time, and whether both remove exactly the same lines.
var n = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 4000;
const double threshold = 0.9;
var random = new Random(7);
var vocabulary = Enumerable.Range(0, 5000).Select(i => $"w{i}").ToArray();
var texts = new List<string>(n);
for (var i = 0; i < n; i++)
{
    if (i > 10 && random.NextDouble() < 0.1)
    {
        // A near duplicate: an earlier text with one word appended (Jaccard about 0.95 at 40 words).
        texts.Add(texts[random.Next(i)] + " " + vocabulary[random.Next(vocabulary.Length)]);
        continue;
    }
    texts.Add(string.Join(' ', Enumerable.Range(0, 40).Select(_ => vocabulary[random.Next(vocabulary.Length)])));
}

var watch = Stopwatch.StartNew();
var index = new NearDuplicateIndex(threshold);
var lshRemoved = new List<int>();
for (var i = 0; i < n; i++)
{
    var shingles = NearDuplicateIndex.Shingles(texts[i]);
    if (index.FindMatch(shingles) is not null)
        lshRemoved.Add(i);
    else
        index.Add(shingles);
}
var lshSeconds = watch.Elapsed.TotalSeconds;

watch.Restart();
var kept = new List<HashSet<ulong>>();
var exhaustiveRemoved = new List<int>();
for (var i = 0; i < n; i++)
{
    var shingles = NearDuplicateIndex.Shingles(texts[i]);
    if (kept.Any(k => NearDuplicateIndex.Jaccard(shingles, k) >= threshold))
        exhaustiveRemoved.Add(i);
    else
        kept.Add(shingles);
}
var exhaustiveSeconds = watch.Elapsed.TotalSeconds;

Console.WriteLine(JsonSerializer.Serialize(new
{
    n,
    lsh_s = lshSeconds,
    exhaustive_s = exhaustiveSeconds,
    lsh_removed = lshRemoved.Count,
    exhaustive_removed = exhaustiveRemoved.Count,
    same_lines = lshRemoved.SequenceEqual(exhaustiveRemoved),
}));

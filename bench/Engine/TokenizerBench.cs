using System.Diagnostics;
using System.Text.Json.Nodes;
using AspireTune.Engine.Tokenization;

/// <summary>
/// Encode speed of a model directory's tokenizer (whichever <see cref="TokenizerFiles.TryLoad"/> picks) over a text
/// file: the load, the first pass (cold word cache) and the median of <c>rounds</c> later passes, each line encoded on
/// its own and the whole file as one text. Prints one JSON line; bench/tokenizer.sh puts the reference beside it.
/// </summary>
static class TokenizerBench
{
    public static void Run(string directory, string textFile, int rounds)
    {
        var lines = File.ReadAllLines(textFile);
        var whole = string.Join("\n", lines);
        var watch = Stopwatch.StartNew();
        var tokenizer = TokenizerFiles.TryLoad(directory) ?? throw new ArgumentException($"{directory} has no tokenizer files");
        var load = watch.Elapsed.TotalSeconds;
        double Pass(Func<int> encode)
        {
            watch.Restart();
            encode();
            return watch.Elapsed.TotalSeconds;
        }
        int Lines() => lines.Sum(l => tokenizer.Encode(l).Count);
        var coldLines = Pass(Lines);
        var warmLines = Median(Enumerable.Range(0, rounds).Select(_ => Pass(Lines)));
        var wholeIds = tokenizer.Encode(whole).Count;
        var warmWhole = Median(Enumerable.Range(0, rounds).Select(_ => Pass(() => tokenizer.Encode(whole).Count)));
        Console.WriteLine(new JsonObject
        {
            ["impl"] = "aspiretune-" + tokenizer.GetType().Name, ["chars"] = whole.Length, ["lines"] = lines.Length,
            ["ids"] = Lines(), ["whole_ids"] = wholeIds, ["load_s"] = Math.Round(load, 3), ["lines_cold_s"] = Math.Round(coldLines, 4),
            ["lines_warm_s"] = Math.Round(warmLines, 4), ["whole_warm_s"] = Math.Round(warmWhole, 4),
            ["mchars_per_s"] = Math.Round(whole.Length / warmLines / 1e6, 2),
        }.ToJsonString());
    }

    private static double Median(IEnumerable<double> xs)
    {
        var s = xs.Order().ToArray();
        return s[s.Length / 2];
    }
}

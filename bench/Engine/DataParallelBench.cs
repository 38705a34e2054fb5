using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using AspireTune.Engine.Distributed;
using AspireTune.Engine.Models;
using AspireTune.Engine.Tokenization;
using AspireTune.Engine.Training;
using TorchSharp;
using static TorchSharp.torch;

/// <summary>
/// Data parallelism over NCCL (issue 17). Modes:
///   dp-parity                  one process: the same seeded SftTrainer run without DataParallel and through the NCCL
///                              path at world size 1; prints the largest loss difference.
///   dp-launch --world N        the launcher: one child process per GPU (this program, mode dp-rank) with the rank, the
///                              world size and the NCCL rendezvous id in its environment; prints rank 0's JSON line.
///   dp-rank                    one rank (started by dp-launch): trains its shard of every batch, gradients all-reduced.
/// Shape and sizes: --shape gpt2-small|demo --batch N (global) --seq N --steps N.
/// </summary>
static class DataParallelBench
{
    public static void Run(string mode, Func<string, string, string> arg)
    {
        switch (mode)
        {
            case "dp-parity": Parity(arg); break;
            case "dp-launch": Launch(arg); break;
            case "dp-rank": Rank(arg); break;
            default: throw new ArgumentException("mode: dp-parity | dp-launch | dp-rank");
        }
    }

    private static (List<SftExample> Train, List<SftExample> Validation) Data(int seq)
    {
        var rng = new Random(7);
        string Words(int n) => string.Join(' ', Enumerable.Range(0, n).Select(_ => "w" + rng.Next(500).ToString(CultureInfo.InvariantCulture)));
        // Byte vocabulary: every character a token, so a prompt of seq/2 characters fills half the sequence.
        List<SftExample> Make(int n) => [.. Enumerable.Range(0, n).Select(_ => new SftExample(Words(seq / 8) + "\nAnswer:", " " + Words(seq / 16)))];
        return (Make(2048), Make(64));
    }

    private static SftOptions Options(Func<string, string, string> arg) => new()
    {
        Epochs = 100, MaxSteps = int.Parse(arg("steps", "20"), CultureInfo.InvariantCulture), BatchSize = int.Parse(arg("batch", "16"), CultureInfo.InvariantCulture),
        LearningRate = 3e-4, WarmupSteps = 2, EvalEverySteps = 1_000_000, CheckpointEverySteps = 0, ExactMatchExamples = 0,
        MaxSequenceLength = int.Parse(arg("seq", "1024"), CultureInfo.InvariantCulture), Seed = 5,
    };

    private static ModelConfig Shape(string name) => name switch
    {
        "gpt2-small" => ModelConfig.Gpt2(320, 768, 12, 12, 1024, dropout: 0),
        "demo" => ModelConfig.Gpt2(320, 256, 4, 4, 1024, dropout: 0),
        _ => throw new ArgumentException("unknown shape " + name),
    };

    private sealed class Rates : ITrainingObserver
    {
        public List<double> TokensPerSecond { get; } = [];
        public void OnProgress(TrainingProgress progress) => TokensPerSecond.Add(progress.TokensPerSecond);
    }

    private static TrainingResult TrainOnce(Func<string, string, string> arg, Device device, IDataParallel? parallel, ITrainingObserver? observer = null)
    {
        var (train, validation) = Data(int.Parse(arg("seq", "1024"), CultureInfo.InvariantCulture));
        using var model = CausalLm.Create(Shape(arg("shape", "demo")), ByteLevelBpeTokenizer.CreateByteLevel(), seed: 1, device: device);
        var dir = Path.Combine(Path.GetTempPath(), "dp-" + Guid.NewGuid().ToString("N"));
        try
        {
            return new SftTrainer(model, Options(arg), observer) { DataParallel = parallel }.Train(train, validation, dir);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static void Parity(Func<string, string, string> arg)
    {
        var device = arg("device", "cuda") == "cpu" ? CPU : CUDA;
        backends.cuda.matmul.allow_tf32 = false;
        var plain = TrainOnce(arg, device, null);
        if (device.type == DeviceType.CPU)
        {
            Console.WriteLine(new JsonObject { ["mode"] = "dp-parity-cpu-smoke", ["steps"] = plain.Steps, ["last_loss"] = plain.TrainLosses[^1] }.ToJsonString());
            return;
        }
        // The plain path twice: how far two identical runs drift on this GPU (bf16 matmuls, atomics in reductions).
        var again = TrainOnce(arg, device, null);
        using var comm = NcclCommunicator.Join(NcclCommunicator.CreateRendezvous(), 0, 1);
        var nccl = TrainOnce(arg, device, comm);
        static double MaxDiff(TrainingResult a, TrainingResult b) => a.TrainLosses.Zip(b.TrainLosses).Max(p => Math.Abs(p.First - p.Second));
        Console.WriteLine(new JsonObject
        {
            ["mode"] = "dp-parity", ["nccl_version"] = NcclCommunicator.Version(), ["steps"] = plain.Steps,
            ["plain_losses"] = new JsonArray([.. plain.TrainLosses.Select(l => (JsonNode)Math.Round(l, 6))]),
            ["plain_again_max_abs_diff"] = MaxDiff(plain, again), ["nccl_world1_max_abs_diff"] = MaxDiff(plain, nccl),
            ["nccl_losses"] = new JsonArray([.. nccl.TrainLosses.Select(l => (JsonNode)Math.Round(l, 6))]),
        }.ToJsonString());
    }

    private static void Launch(Func<string, string, string> arg)
    {
        var world = int.Parse(arg("world", "1"), CultureInfo.InvariantCulture);
        var id = NcclCommunicator.CreateRendezvous();
        var self = Environment.ProcessPath!;
        var args = Environment.GetCommandLineArgs().Skip(1).ToList();
        args[0] = "dp-rank";
        var children = Enumerable.Range(0, world).Select(rank =>
        {
            var start = new ProcessStartInfo(self) { RedirectStandardOutput = true, UseShellExecute = false };
            foreach (var a in args) start.ArgumentList.Add(a);
            start.Environment["ASPIRETUNE_RANK"] = rank.ToString(CultureInfo.InvariantCulture);
            start.Environment["ASPIRETUNE_WORLD_SIZE"] = world.ToString(CultureInfo.InvariantCulture);
            start.Environment["ASPIRETUNE_NCCL_ID"] = id;
            return Process.Start(start)!;
        }).ToList();
        var outputs = children.Select(c => c.StandardOutput.ReadToEndAsync()).ToList();
        foreach (var c in children) c.WaitForExit();
        var failed = children.Select((c, r) => (c.ExitCode, r)).Where(x => x.ExitCode != 0).ToList();
        if (failed.Count > 0)
            throw new InvalidOperationException($"ranks {string.Join(", ", failed.Select(f => f.r))} failed: {string.Join('\n', outputs.Select(o => o.Result))}");
        Console.Write(outputs[0].Result);
    }

    private static void Rank(Func<string, string, string> arg)
    {
        var rank = int.Parse(Environment.GetEnvironmentVariable("ASPIRETUNE_RANK")!, CultureInfo.InvariantCulture);
        var world = int.Parse(Environment.GetEnvironmentVariable("ASPIRETUNE_WORLD_SIZE")!, CultureInfo.InvariantCulture);
        var device = new Device(DeviceType.CUDA, rank);
        cuda.manual_seed_all(0);
        backends.cuda.matmul.allow_tf32 = true;
        using var comm = NcclCommunicator.Join(Environment.GetEnvironmentVariable("ASPIRETUNE_NCCL_ID")!, rank, world);
        var rates = new Rates();
        var result = TrainOnce(arg, device, comm, rates);
        // Steps after the first two (warm-up: allocations, cuBLAS heuristics); tokens are the real ones of all ranks.
        var steady = rates.TokensPerSecond.Skip(2).Order().ToList();
        if (rank == 0)
            Console.WriteLine(new JsonObject
            {
                ["mode"] = "aspiretune-dp", ["world"] = world, ["steps"] = result.Steps, ["last_loss"] = result.TrainLosses[^1],
                ["tokens_per_s"] = steady.Count > 0 ? steady[steady.Count / 2] : null,
            }.ToJsonString());
    }
}

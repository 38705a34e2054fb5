using AspireTune.Engine.Distributed;
using AspireTune.Engine.Training;
using static TorchSharp.torch;

namespace AspireTune.FineTuning.Tests.Engine;

[Collection(GlobalGeneratorCollection.Name)]
public sealed class DataParallelTests
{
    /// <summary>
    /// Ranks as threads of one process with a real collective (every rank's buffer summed at a barrier): what NCCL does
    /// across GPUs, on CPU tensors, so the trainer's sharding and reduction can be checked without a GPU.
    /// </summary>
    private sealed class ThreadGroup(int worldSize)
    {
        private readonly Tensor?[] _slots = new Tensor?[worldSize];
        private readonly Barrier _arrived = new(worldSize);
        private readonly Barrier _copied = new(worldSize);

        public IDataParallel Rank(int rank) => new Member(this, rank);

        private void Collective(int rank, Tensor buffer, bool broadcast)
        {
            _slots[rank] = buffer;
            _arrived.SignalAndWait();
            using (var result = broadcast ? _slots[0]!.clone() : _slots.Select(s => s!).Aggregate((a, b) => a + b))
            {
                _copied.SignalAndWait(); // everyone has read the inputs before anyone overwrites its own
                buffer.copy_(result);
            }
            _arrived.SignalAndWait();
        }

        private sealed class Member(ThreadGroup group, int rank) : IDataParallel
        {
            public int Rank => rank;
            public int WorldSize => group._slots.Length;
            public void AllReduceSum(Tensor buffer) => group.Collective(rank, buffer, broadcast: false);
            public void Broadcast(Tensor buffer) => group.Collective(rank, buffer, broadcast: true);
        }
    }

    private static List<SftExample> Examples(int n, int seed)
    {
        var rng = new Random(seed);
        return [.. Enumerable.Range(0, n).Select(i => new SftExample($"item {rng.Next(1000)} is", rng.Next(2) == 0 ? " even" : " odd"))];
    }

    private static SftOptions Options => new()
    {
        Epochs = 2, BatchSize = 8, LearningRate = 3e-3, WarmupSteps = 1, EvalEverySteps = 3, EarlyStoppingPatience = 0,
        CheckpointEverySteps = 0, ExactMatchExamples = 0, Dropout = 0.0, Seed = 4,
    };

    [Fact]
    public void Train_TwoRanksWithShardedBatches_TakeTheSameStepsAsOneProcessOnWholeBatches()
    {
        var train = Examples(24, 1);
        var validation = Examples(8, 2);
        TrainingResult single;
        using (var model = EngineFixtures.TinyGpt2(seed: 7))
            single = new SftTrainer(model, Options).Train(train, validation, EngineFixtures.TempDirectory(), cancellationToken: TestContext.Current.CancellationToken);

        var group = new ThreadGroup(2);
        var results = new TrainingResult[2];
        var weights = new float[2][];
        // Rank 1 starts from other random weights: the broadcast must replace them with rank 0's. (Made here, one after
        // the other: initialisation draws from torch's one global generator.)
        var models = new[] { EngineFixtures.TinyGpt2(seed: 7), EngineFixtures.TinyGpt2(seed: 99) };
        var ranks = Enumerable.Range(0, 2).Select(rank => new Thread(() =>
        {
            results[rank] = new SftTrainer(models[rank], Options) { DataParallel = group.Rank(rank) }.Train(train, validation, EngineFixtures.TempDirectory());
            weights[rank] = [.. models[rank].NamedParameters().SelectMany(p => p.Parameter.detach().cpu().flatten().data<float>().ToArray())];
        })).ToList();
        ranks.ForEach(t => t.Start());
        ranks.ForEach(t => t.Join());
        foreach (var model in models)
            model.Dispose();

        results[0].TrainLosses.Should().HaveCount(single.TrainLosses.Count);
        for (var i = 0; i < single.TrainLosses.Count; i++)
        {
            results[0].TrainLosses[i].Should().BeApproximately(single.TrainLosses[i], 1e-5, $"step {i + 1}: the shards' summed gradients are the whole batch's");
            results[1].TrainLosses[i].Should().Be(results[0].TrainLosses[i], "every rank reports the reduced loss");
        }
        weights[1].Should().Equal(weights[0], "every rank took the same optimizer steps");
        results[0].Evaluations.Select(e => e.ValidationLoss).Should().Equal(results[1].Evaluations.Select(e => e.ValidationLoss));
    }
}

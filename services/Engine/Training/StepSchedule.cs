using TorchSharp;
using static TorchSharp.torch;

namespace AspireTune.Engine.Training;

/// <summary>
/// Which training units (examples, packed rows, preference pairs) each optimizer step of a run trains on, shared
/// by <see cref="SftTrainer"/> and <see cref="DpoTrainer"/>: batches of a shuffled order fixed by (seed, epoch),
/// grouped into micro-batches for gradient accumulation, so a resumed run sees exactly the batches it would have.
/// </summary>
internal sealed class StepSchedule(int units, SftOptions options)
{
    private int[]? _order;
    private int _orderEpoch = -1;

    public int BatchesPerEpoch { get; } = (units + options.BatchSize - 1) / options.BatchSize;
    public int StepsPerEpoch => (BatchesPerEpoch + options.GradientAccumulationSteps - 1) / options.GradientAccumulationSteps;
    public int TotalSteps => Math.Min(options.Epochs * StepsPerEpoch, options.MaxSteps ?? int.MaxValue);

    /// <summary>The unit indices of each micro-batch of optimizer step <paramref name="step"/> (1-based).</summary>
    public List<List<int>> MicroBatches(int step)
    {
        var epoch = (step - 1) / StepsPerEpoch;
        if (epoch != _orderEpoch)
        {
            _order = Shuffle(units, options.Seed, epoch);
            _orderEpoch = epoch;
        }
        var first = (step - 1) % StepsPerEpoch * options.GradientAccumulationSteps;
        return [.. Enumerable.Range(first, options.GradientAccumulationSteps).Where(b => b < BatchesPerEpoch)
            .Select(b => _order!.Skip(b * options.BatchSize).Take(options.BatchSize).ToList())];
    }

    /// <summary>The order of a run's units in one epoch.</summary>
    public static int[] Shuffle(int n, long seed, int epoch)
    {
        var order = Enumerable.Range(0, n).ToArray();
        new Random(unchecked((int)(seed * 7919 + epoch))).Shuffle(order);
        return order;
    }

    /// <summary>Dropout draws depend only on (seed, step, micro-batch): a resumed run repeats them exactly.</summary>
    public static void Reseed(long seed, int step, int microBatch, Device device)
    {
        var value = seed * 1_000_003 + step * 131L + microBatch;
        manual_seed(value);
        if (device.type == DeviceType.CUDA) cuda.manual_seed(value);
    }
}

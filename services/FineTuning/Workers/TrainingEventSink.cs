using System.Diagnostics;
using System.Threading.Channels;
using AspireTune.Contracts.FineTuning;
using AspireTune.Engine.Training;
using AspireTune.FineTuning.Data;
using AspireTune.FineTuning.Jobs;
using AspireTune.FineTuning.Registry;
using AspireTune.ServiceDefaults;
using AspireTune.ServiceDefaults.Messaging;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.FineTuning.Workers;

/// <summary>
/// Turns the trainer's callbacks (on the training thread) into database rows and bus events, in order,
/// on one pump task, so training never waits on the database or the broker.
/// </summary>
public sealed class TrainingEventSink(IServiceScopeFactory scopes, ModelRegistry registry, FineTuningOptions options, string worker, FineTuningJob job) : ITrainingListener
{
    private readonly Channel<Func<Task>> _work = Channel.CreateUnbounded<Func<Task>>(new UnboundedChannelOptions { SingleReader = true });
    private long _lastProgressTicks;
    private readonly List<double> _lossesSinceEvent = [];
    public int LastStep;

    public void Complete() => _work.Writer.TryComplete();

    public async Task PumpAsync()
    {
        await foreach (var item in _work.Reader.ReadAllAsync())
            await item();
    }

    private void Enqueue(Func<Task> item) => _work.Writer.TryWrite(item);

    public void OnStarted(int totalSteps, string device, int resumedFromStep) => Enqueue(async () =>
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
        var now = DateTimeOffset.UtcNow;
        await db.Jobs.Where(j => j.Id == job.Id).ExecuteUpdateAsync(s => s.SetProperty(j => j.TotalSteps, totalSteps)
            .SetProperty(j => j.StartedAt, j => j.StartedAt ?? now).SetProperty(j => j.Step, resumedFromStep));
        JobEvents.Add(db, job.Id, "info", "started", resumedFromStep > 0
            ? $"Training resumed from step {resumedFromStep} of {totalSteps} on {device} by {worker}."
            : $"Training started: {totalSteps} steps on {device} by {worker}.");
        db.PublishOnCommit(new TrainingStarted
        {
            JobId = job.Id,
            ExperimentId = job.ExperimentId,
            BaseModel = job.BaseModel,
            Worker = worker,
            Device = device,
            TotalSteps = totalSteps,
            Resumed = resumedFromStep > 0 || job.Attempts > 1,
            StartedAt = now,
        });
        await db.SaveChangesAsync();
    });

    public void OnProgress(TrainingProgress step)
    {
        LastStep = step.Step;
        var jobTag = new KeyValuePair<string, object?>("aspiretune.job_id", job.Id);
        FineTuningTelemetry.TrainingLoss.Record(step.TrainLoss, jobTag);
        FineTuningTelemetry.TokensPerSecond.Record(step.TokensPerSecond, jobTag);
        FineTuningTelemetry.TrainingStep.Record(step.Step, jobTag);
        lock (_lossesSinceEvent)
            _lossesSinceEvent.Add(step.TrainLoss);
        var now = Stopwatch.GetTimestamp();
        var due = Stopwatch.GetElapsedTime(Interlocked.Read(ref _lastProgressTicks), now).TotalMilliseconds >= options.ProgressIntervalMs;
        if (!due && step.Step != step.TotalSteps)
            return;
        Interlocked.Exchange(ref _lastProgressTicks, now);
        Enqueue(() => ProgressAsync(step.Step, step.TotalSteps, step.Epoch, step.LearningRate, step.TokensPerSecond, null));
    }

    public void OnEvaluation(EvaluationResult evaluation) =>
        Enqueue(() => ProgressAsync(evaluation.Step, job.TotalSteps, evaluation.Epoch, null, null, evaluation));

    private double? _lastLr;
    private double _lastTokensPerSecond;

    private async Task ProgressAsync(int step, int total, double epoch, double? lr, double? tokensPerSecond, EvaluationResult? evaluation)
    {
        double loss;
        lock (_lossesSinceEvent)
        {
            loss = evaluation?.TrainLoss ?? (_lossesSinceEvent.Count == 0 ? double.NaN : _lossesSinceEvent.Average());
            _lossesSinceEvent.Clear();
        }
        _lastLr = lr ?? _lastLr;
        _lastTokensPerSecond = tokensPerSecond ?? _lastTokensPerSecond;
        if (double.IsNaN(loss))
            return;
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
        db.Metrics.Add(new JobMetric
        {
            JobId = job.Id,
            Step = step,
            Epoch = epoch,
            TrainLoss = loss,
            ValidLoss = evaluation?.ValidationLoss,
            ValidMeanTokenAccuracy = evaluation?.MeanTokenAccuracy,
            LearningRate = _lastLr ?? 0,
            TokensPerSecond = _lastTokensPerSecond,
        });
        if (evaluation is { RewardAccuracy: { } rewardAccuracy, RewardMargin: { } rewardMargin })
            JobEvents.Add(db, job.Id, "info", "metrics",
                $"Step {step}/{total}: train loss {loss:0.0000}, valid loss {evaluation.ValidationLoss:0.0000}, valid reward accuracy {rewardAccuracy:0.0000}, valid reward margin {rewardMargin:0.0000}",
                new { step, train_loss = loss, valid_loss = evaluation.ValidationLoss, valid_mean_token_accuracy = evaluation.MeanTokenAccuracy,
                    valid_reward_accuracy = rewardAccuracy, valid_reward_margin = rewardMargin });
        else if (evaluation is not null)
            JobEvents.Add(db, job.Id, "info", "metrics",
                $"Step {step}/{total}: train loss {loss:0.0000}, valid loss {evaluation.ValidationLoss:0.0000}, valid mean token accuracy {evaluation.MeanTokenAccuracy:0.0000}",
                new { step, train_loss = loss, valid_loss = evaluation.ValidationLoss, valid_mean_token_accuracy = evaluation.MeanTokenAccuracy });
        db.PublishOnCommit(new TrainingProgressed
        {
            JobId = job.Id,
            ExperimentId = job.ExperimentId,
            Step = step,
            TotalSteps = total,
            Epoch = epoch,
            TrainLoss = loss,
            ValidLoss = evaluation?.ValidationLoss,
            ValidMeanTokenAccuracy = evaluation?.MeanTokenAccuracy,
            ValidMetric = evaluation?.ExactMatch ?? evaluation?.RewardAccuracy,
            LearningRate = _lastLr ?? 0,
            TokensPerSecond = _lastTokensPerSecond,
        });
        await db.SaveChangesAsync();
        await db.Jobs.Where(j => j.Id == job.Id && j.Step < step).ExecuteUpdateAsync(s => s.SetProperty(j => j.Step, step));
    }

    public void OnCheckpoint(CheckpointInfo checkpoint) => Enqueue(async () =>
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<FineTuningDbContext>();
        var id = $"ftckpt-{CompactId.Encode(job.Id)}-{checkpoint.Step}";
        if (await db.Checkpoints.AnyAsync(c => c.Id == id))
            return; // re-saved after a resume: the row already describes it
        db.Checkpoints.Add(new JobCheckpoint
        {
            Id = id,
            JobId = job.Id,
            Step = checkpoint.Step,
            TrainLoss = checkpoint.TrainLoss,
            ValidLoss = checkpoint.LastEvaluation?.ValidationLoss,
            ValidMeanTokenAccuracy = checkpoint.LastEvaluation?.MeanTokenAccuracy,
            Path = registry.Relative(checkpoint.Directory),
        });
        JobEvents.Add(db, job.Id, "info", "checkpoint", $"Checkpoint {id} saved at step {checkpoint.Step}.");
        db.PublishOnCommit(new CheckpointSaved
        {
            JobId = job.Id,
            ExperimentId = job.ExperimentId,
            Step = checkpoint.Step,
            TrainLoss = checkpoint.TrainLoss,
            ValidLoss = checkpoint.LastEvaluation?.ValidationLoss,
            ValidMeanTokenAccuracy = checkpoint.LastEvaluation?.MeanTokenAccuracy,
            CheckpointId = id,
        });
        await db.SaveChangesAsync();
    });
}

using AspireTune.Comparison.Data;
using AspireTune.Comparison.Workflow;
using AspireTune.Contracts.Comparison;
using AspireTune.Contracts.Evaluation;
using AspireTune.Contracts.FineTuning;
using AspireTune.Contracts.Retrieval;
using AspireTune.ServiceDefaults.Data;
using MassTransit;

namespace AspireTune.Comparison.Consumers;

// Each consumer moves one experiment forward; names carry the "Experiment" prefix so their queues
// (kebab-case of the class name) never collide with other services' consumers of the same events. Each handles a
// message once (inbox in the Comparison database, committed with the workflow's state and outbox rows).

public sealed class StartExperimentConsumer(ExperimentWorkflow workflow, ComparisonDbContext db) : IConsumer<StartExperiment>
{
    public Task Consume(ConsumeContext<StartExperiment> context) => db.ConsumeOnceAsync(context, GetType().Name, () => workflow.StartAsync(context.Message, context));
}

public sealed class ExperimentCollectionIndexedConsumer(ExperimentWorkflow workflow, ComparisonDbContext db) : IConsumer<CollectionIndexed>
{
    public Task Consume(ConsumeContext<CollectionIndexed> context) =>
        context.Message.ExperimentId is null ? Task.CompletedTask : db.ConsumeOnceAsync(context, GetType().Name, () => workflow.OnCollectionIndexedAsync(context.Message, context));
}

public sealed class ExperimentTrainingCompletedConsumer(ExperimentWorkflow workflow, ComparisonDbContext db) : IConsumer<TrainingCompleted>
{
    public Task Consume(ConsumeContext<TrainingCompleted> context) =>
        context.Message.ExperimentId is null ? Task.CompletedTask : db.ConsumeOnceAsync(context, GetType().Name, () => workflow.OnTrainingCompletedAsync(context.Message, context));
}

public sealed class ExperimentTrainingFailedConsumer(ExperimentWorkflow workflow, ComparisonDbContext db) : IConsumer<TrainingFailed>, IConsumer<TrainingCancelled>
{
    public Task Consume(ConsumeContext<TrainingFailed> context) =>
        db.ConsumeOnceAsync(context, GetType().Name, () => workflow.OnTrainingFailedAsync(context.Message.ExperimentId, context.Message.JobId, $"{context.Message.Code}: {context.Message.Reason}", context));

    public Task Consume(ConsumeContext<TrainingCancelled> context) =>
        db.ConsumeOnceAsync(context, GetType().Name, () => workflow.OnTrainingFailedAsync(context.Message.ExperimentId, context.Message.JobId, $"cancelled at step {context.Message.Step}", context));
}

public sealed class ExperimentEvaluationCompletedConsumer(ExperimentWorkflow workflow, ComparisonDbContext db) : IConsumer<EvaluationCompleted>
{
    public Task Consume(ConsumeContext<EvaluationCompleted> context) =>
        context.Message.ExperimentId is null ? Task.CompletedTask : db.ConsumeOnceAsync(context, GetType().Name, () => workflow.OnEvaluationCompletedAsync(context.Message, context));
}

public sealed class ExperimentEvaluationFailedConsumer(ExperimentWorkflow workflow, ComparisonDbContext db) : IConsumer<EvaluationFailed>
{
    public Task Consume(ConsumeContext<EvaluationFailed> context) =>
        context.Message.ExperimentId is null ? Task.CompletedTask : db.ConsumeOnceAsync(context, GetType().Name, () => workflow.OnEvaluationFailedAsync(context.Message, context));
}

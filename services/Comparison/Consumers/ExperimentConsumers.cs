using AspireTune.Comparison.Workflow;
using AspireTune.Contracts.Comparison;
using AspireTune.Contracts.Evaluation;
using AspireTune.Contracts.FineTuning;
using AspireTune.Contracts.Retrieval;
using MassTransit;

namespace AspireTune.Comparison.Consumers;

// Each consumer moves one experiment forward; names carry the "Experiment" prefix so their queues
// (kebab-case of the class name) never collide with other services' consumers of the same events.

public sealed class StartExperimentConsumer(ExperimentWorkflow workflow) : IConsumer<StartExperiment>
{
    public Task Consume(ConsumeContext<StartExperiment> context) => workflow.StartAsync(context.Message, context);
}

public sealed class ExperimentCollectionIndexedConsumer(ExperimentWorkflow workflow) : IConsumer<CollectionIndexed>
{
    public Task Consume(ConsumeContext<CollectionIndexed> context) =>
        context.Message.ExperimentId is null ? Task.CompletedTask : workflow.OnCollectionIndexedAsync(context.Message, context);
}

public sealed class ExperimentTrainingCompletedConsumer(ExperimentWorkflow workflow) : IConsumer<TrainingCompleted>
{
    public Task Consume(ConsumeContext<TrainingCompleted> context) =>
        context.Message.ExperimentId is null ? Task.CompletedTask : workflow.OnTrainingCompletedAsync(context.Message, context);
}

public sealed class ExperimentTrainingFailedConsumer(ExperimentWorkflow workflow) : IConsumer<TrainingFailed>, IConsumer<TrainingCancelled>
{
    public Task Consume(ConsumeContext<TrainingFailed> context) =>
        workflow.OnTrainingFailedAsync(context.Message.ExperimentId, context.Message.JobId, $"{context.Message.Code}: {context.Message.Reason}", context);

    public Task Consume(ConsumeContext<TrainingCancelled> context) =>
        workflow.OnTrainingFailedAsync(context.Message.ExperimentId, context.Message.JobId, $"cancelled at step {context.Message.Step}", context);
}

public sealed class ExperimentEvaluationCompletedConsumer(ExperimentWorkflow workflow) : IConsumer<EvaluationCompleted>
{
    public Task Consume(ConsumeContext<EvaluationCompleted> context) =>
        context.Message.ExperimentId is null ? Task.CompletedTask : workflow.OnEvaluationCompletedAsync(context.Message, context);
}

public sealed class ExperimentEvaluationFailedConsumer(ExperimentWorkflow workflow) : IConsumer<EvaluationFailed>
{
    public Task Consume(ConsumeContext<EvaluationFailed> context) =>
        context.Message.ExperimentId is null ? Task.CompletedTask : workflow.OnEvaluationFailedAsync(context.Message, context);
}

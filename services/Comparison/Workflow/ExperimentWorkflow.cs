using System.Text;
using System.Text.Json;
using AspireTune.Comparison.Analysis;
using AspireTune.Comparison.Curation;
using AspireTune.Comparison.Data;
using AspireTune.Comparison.Reports;
using AspireTune.Contracts.Common;
using AspireTune.Contracts.Datasets;
using AspireTune.Contracts.Comparison;
using AspireTune.Contracts.Evaluation;
using AspireTune.Contracts.FineTuning;
using AspireTune.Contracts.Retrieval;
using AspireTune.ServiceDefaults;
using AspireTune.ServiceDefaults.Artifacts;
using AspireTune.ServiceDefaults.Messaging;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace AspireTune.Comparison.Workflow;

/// <summary>
/// The four-step workflow as a state machine persisted in the Comparison database. Each incoming event moves
/// one experiment forward; commands go to the owning service's queue, facts are published. This file: how each
/// event moves an experiment; the commands it sends are built in ExperimentWorkflow.Commands.cs,
/// its split files are written and read in ExperimentWorkflow.Files.cs, its kNN baseline answers in ExperimentWorkflow.Knn.cs.
/// </summary>
public sealed partial class ExperimentWorkflow(
    ComparisonDbContext db,
    IArtifactStore artifacts,
    EvaluationSetupClient evaluation,
    KnnBaselineClient retrieval,
    IOptions<ComparisonOptions> options,
    TimeProvider clock,
    ILogger<ExperimentWorkflow> logger)
{
    public static readonly Uri RunEvaluationQueue = new("queue:run-evaluation");
    public static readonly Uri IndexDatasetQueue = new("queue:index-dataset");
    public static readonly Uri StartFineTuningQueue = new("queue:start-fine-tuning");

    private ComparisonOptions Options => options.Value;

    public async Task StartAsync(StartExperiment command, ConsumeContext context)
    {
        // The API records the experiment as Queued before sending the command; a command sent by another
        // service arrives first. Anything else means a redelivery: the experiment already started.
        var experiment = await LoadAsync(command.ExperimentId, context);
        if (experiment is { Status: not ExperimentStatus.Queued })
            return;
        var now = clock.GetUtcNow();
        if (experiment is null)
        {
            experiment = new Experiment { Id = command.ExperimentId, Name = command.Name, CreatedAt = now, Request = command };
            db.Experiments.Add(experiment);
        }
        experiment.Status = ExperimentStatus.Running;
        experiment.DatasetSha256 = command.Dataset.Sha256;

        var jsonl = Encoding.UTF8.GetString(await artifacts.ReadVerifiedAsync(command.Dataset, context.CancellationToken));
        var generation = command.Task == ExperimentTask.Generation;
        var (splits, report) = Curator.Curate(jsonl, command.TestFraction, Options.ValidationFraction, command.Seed, Options.NearDuplicateThreshold, command.Task);
        experiment.Curation = report;
        var labels = report.LabelCounts.Keys.ToList();
        if (splits.Train.Count == 0 || splits.Test.Count == 0 || (!generation && labels.Count < 2))
        {
            await FailAsync(experiment, "curation", generation
                ? $"After curation the dataset has {report.Kept} usable examples: a non-empty train and test split are needed."
                : $"After curation the dataset has {report.Kept} usable examples and {labels.Count} label(s): at least two labels and a non-empty train and test split are needed.", context);
            return;
        }

        var prefix = $"experiments/{experiment.Id:N}";
        var train = await PutSplitAsync(prefix, "train.jsonl", splits.Train, context.CancellationToken);
        var validation = await PutSplitAsync(prefix, "validation.jsonl", splits.Validation.Count > 0 ? splits.Validation : splits.Train, context.CancellationToken);
        var test = await PutSplitAsync(prefix, "test.jsonl", splits.Test, context.CancellationToken);
        experiment.TrainArtifact = train;
        experiment.ValidationArtifact = validation;
        experiment.TestArtifact = test;
        Log(experiment, "curation", $"Curated {report.Received} lines: kept {report.Kept} (exact duplicates {report.ExactDuplicatesRemoved}, near duplicates {report.NearDuplicatesRemoved}, conflicts {report.ConflictingLabelsRemoved}); split {report.Train}/{report.Validation}/{report.Test}.");

        var kinds = command.Candidates.Select(k => CandidateKinds.TryParse(k, out var kind) ? kind : (CandidateKind?)null).OfType<CandidateKind>().ToHashSet();
        // Only the prompted and retrieval candidates call a model endpoint: a kNN or fine-tuning-only experiment does not
        // wait on Evaluation to register the local one.
        List<string> endpoints = command.ModelEndpoints.Count > 0 ? [.. command.ModelEndpoints]
            : kinds.Contains(CandidateKind.Prompted) || kinds.Contains(CandidateKind.Retrieval)
                ? [await evaluation.EnsureLocalEndpointAsync(command.BaseModel ?? Options.DefaultBaseModel, context.CancellationToken)]
                : [];

        if (kinds.Contains(CandidateKind.Prompted))
        {
            var prompts = new List<string>();
            foreach (var (name, template) in generation ? PromptVariants.PromptedGeneration(command.Instruction, report.ReferenceFields) : PromptVariants.Prompted(labels))
                prompts.Add(await evaluation.EnsurePromptAsync($"{Slug(experiment)}-{name}", template, context.CancellationToken));
            foreach (var endpoint in endpoints)
            {
                var candidate = new Candidate { Name = new CandidateName(CandidateKind.Prompted, endpoint).ToString(), Kind = CandidateKind.Prompted, ModelEndpoint = endpoint, Prompts = string.Join(',', prompts), Status = CandidateStatus.Tuning, TuningRunId = NewId.NextGuid() };
                experiment.Candidates.Add(candidate);
                db.SendOnCommit(RunEvaluationQueue, Evaluate(experiment, candidate.TuningRunId!.Value, prompts, [endpoint], validation));
            }
            Log(experiment, "prompting", $"Prompt engineering: {prompts.Count} variants x {endpoints.Count} model(s) on the validation split.");
        }
        if (kinds.Contains(CandidateKind.Retrieval) || kinds.Contains(CandidateKind.Knn))
        {
            experiment.Collection = $"{Slug(experiment)}-train";
            if (kinds.Contains(CandidateKind.Retrieval))
                foreach (var endpoint in endpoints)
                    experiment.Candidates.Add(new Candidate { Name = new CandidateName(CandidateKind.Retrieval, endpoint).ToString(), Kind = CandidateKind.Retrieval, ModelEndpoint = endpoint, Status = CandidateStatus.Pending });
            if (kinds.Contains(CandidateKind.Knn))
                experiment.Candidates.Add(new Candidate { Name = new CandidateName(CandidateKind.Knn, null).ToString(), Kind = CandidateKind.Knn, Status = CandidateStatus.Pending });
            db.SendOnCommit(IndexDatasetQueue, new IndexDataset { RequestId = NewId.NextGuid(), ExperimentId = experiment.Id, Collection = experiment.Collection, Dataset = train });
            Log(experiment, "retrieval", $"Indexing {splits.Train.Count} training examples into collection '{experiment.Collection}'.");
        }
        if (kinds.Contains(CandidateKind.FineTuned))
        {
            experiment.FineTuningJobId = NewId.NextGuid();
            var baseModel = command.BaseModel ?? Options.DefaultBaseModel;
            experiment.Candidates.Add(new Candidate { Name = new CandidateName(CandidateKind.FineTuned, baseModel).ToString(), Kind = CandidateKind.FineTuned, Status = CandidateStatus.Tuning });
            db.SendOnCommit(StartFineTuningQueue, await FineTuningCommandAsync(experiment, baseModel, context.CancellationToken));
            Log(experiment, "fine-tuning", $"Fine-tuning {baseModel} on {splits.Train.Count} examples (job {experiment.FineTuningJobId}).");
        }
        if (experiment.Candidates.Count == 0)
        {
            await FailAsync(experiment, "curation", $"No candidate to run: choose among {string.Join(", ", CandidateKinds.All)}.", context);
            return;
        }

        experiment.Step = "candidates";
        experiment.Touch(clock.GetUtcNow());
        db.PublishOnCommit(new ExperimentStarted { ExperimentId = experiment.Id, Name = experiment.Name, DatasetSha256 = command.Dataset.Sha256, StartedAt = experiment.CreatedAt });
        db.PublishOnCommit(new ExperimentStepCompleted
        {
            ExperimentId = experiment.Id,
            Step = "curation",
            CompletedAt = clock.GetUtcNow(),
            Metrics =
            [
                new MetricValue { Name = "kept", Value = report.Kept },
                new MetricValue { Name = "near_duplicates_removed", Value = report.NearDuplicatesRemoved },
                new MetricValue { Name = "exact_duplicates_removed", Value = report.ExactDuplicatesRemoved },
                new MetricValue { Name = "test_items", Value = report.Test },
            ],
        });
        await db.SaveChangesAsync(context.CancellationToken);
    }

    public async Task OnCollectionIndexedAsync(CollectionIndexed message, ConsumeContext context)
    {
        var experiment = await LoadAsync(message.ExperimentId, context);
        if (experiment is null || experiment.Collection != message.Collection || experiment.Status != ExperimentStatus.Running)
            return;
        var test = Artifact(experiment.TestArtifact);
        var labels = Curation(experiment).LabelCounts.Keys.ToList();
        Log(experiment, "retrieval", $"Collection '{message.Collection}' holds {message.Points} points ({message.EmbeddingModel}, {message.Dimensions} dimensions).");

        foreach (var candidate in experiment.Candidates.Where(c => c.Kind == CandidateKind.Retrieval && c.Status == CandidateStatus.Pending))
        {
            var request = Request(experiment);
            var (name, template) = request.Task == ExperimentTask.Generation ? PromptVariants.RetrievalGeneration(request.Instruction) : PromptVariants.Retrieval(labels);
            var prompt = await evaluation.EnsurePromptAsync($"{Slug(experiment)}-{name}", template, context.CancellationToken);
            candidate.Prompts = prompt;
            candidate.TestRunId = NewId.NextGuid();
            candidate.Status = CandidateStatus.Evaluating;
            db.SendOnCommit(RunEvaluationQueue, Evaluate(experiment, candidate.TestRunId.Value, [prompt], [candidate.ModelEndpoint!], test) with
            {
                RetrievalCollection = experiment.Collection,
                RetrievalTopK = Options.RetrievalExamples,
            });
        }

        if (experiment.Candidates.FirstOrDefault(c => c.Kind == CandidateKind.Knn && c.Status == CandidateStatus.Pending) is { } knn)
        {
            var items = DatasetReader.Parse(await artifacts.ReadVerifiedAsync(test, context.CancellationToken)).Examples;
            knn.Outcomes = Request(experiment).Task == ExperimentTask.Generation
                ? [.. await NearestReferencesAsync(experiment, items, context.CancellationToken)]
                : [.. await KnnVotesAsync(experiment, items, context.CancellationToken)];
            knn.Status = CandidateStatus.Succeeded;
        }

        db.PublishOnCommit(new ExperimentStepCompleted { ExperimentId = experiment.Id, Step = "retrieval", CompletedAt = clock.GetUtcNow() });
        await SaveAndMaybeFinishAsync(experiment, context);
    }

    public async Task OnTrainingCompletedAsync(TrainingCompleted message, ConsumeContext context)
    {
        var experiment = await LoadAsync(message.ExperimentId, context);
        if (experiment?.FineTuningJobId != message.JobId || experiment.Status != ExperimentStatus.Running)
            return;
        var candidate = experiment.Candidates.Single(c => c.Kind == CandidateKind.FineTuned);
        if (candidate.Status != CandidateStatus.Tuning)
            return;
        experiment.FineTunedModel = message.ModelId;
        experiment.TrainingHours = message.Duration.TotalHours;
        experiment.Training = TrainingFits.From(candidate.Name, message);
        var endpoint = await evaluation.EnsureServedEndpointAsync(message.ModelId, message.ServedEndpoint, context.CancellationToken);
        var (name, template) = PromptVariants.FineTuned(Request(experiment).Task);
        var prompt = await evaluation.EnsurePromptAsync($"{Slug(experiment)}-{name}", template, context.CancellationToken);
        candidate.ModelEndpoint = endpoint;
        candidate.Prompts = prompt;
        candidate.TestRunId = NewId.NextGuid();
        candidate.Status = CandidateStatus.Evaluating;
        Log(experiment, "fine-tuning", $"Model {message.ModelId} trained in {message.Duration:hh\\:mm\\:ss} (best step {message.BestStep}; {message.FitVerdict ?? "no verdict"}). {message.FitAdvice}");
        db.SendOnCommit(RunEvaluationQueue, Evaluate(experiment, candidate.TestRunId.Value, [prompt], [endpoint], Artifact(experiment.TestArtifact)));
        db.PublishOnCommit(new ExperimentStepCompleted
        {
            ExperimentId = experiment.Id,
            Step = "fine-tuning",
            CompletedAt = clock.GetUtcNow(),
            Metrics = message.BestMetrics,
        });
        await SaveAndMaybeFinishAsync(experiment, context);
    }

    public async Task OnTrainingFailedAsync(Guid? experimentId, Guid jobId, string reason, ConsumeContext context)
    {
        var experiment = await LoadAsync(experimentId, context);
        if (experiment?.FineTuningJobId != jobId || experiment.Status != ExperimentStatus.Running)
            return;
        var candidate = experiment.Candidates.Single(c => c.Kind == CandidateKind.FineTuned);
        candidate.Status = CandidateStatus.Failed;
        candidate.Error = reason;
        Log(experiment, "fine-tuning", $"Fine-tuning did not finish: {reason}");
        await SaveAndMaybeFinishAsync(experiment, context);
    }

    public async Task OnEvaluationCompletedAsync(EvaluationCompleted message, ConsumeContext context)
    {
        var experiment = await LoadAsync(message.ExperimentId, context);
        if (experiment is null || experiment.Status != ExperimentStatus.Running)
            return;
        if (experiment.Candidates.FirstOrDefault(c => c.TuningRunId == message.RunId && c.Status == CandidateStatus.Tuning) is { } tuning)
        {
            // Prompt engineering round done: keep the variant with the best primary score for this model.
            var primary = PrimaryMetric(experiment);
            double PrimaryScore(EvaluationSummary s) => TaskScoring.SummaryScore(s, primary);
            var best = message.Summaries.OrderByDescending(PrimaryScore).First();
            tuning.Prompts = best.Prompt;
            tuning.TestRunId = NewId.NextGuid();
            tuning.Status = CandidateStatus.Evaluating;
            Log(experiment, "prompting", $"{tuning.ModelEndpoint}: best prompt {best.Prompt} ({string.Join(", ", message.Summaries.Select(s => $"{s.Prompt} {PrimaryScore(s):P1}"))}).");
            db.SendOnCommit(RunEvaluationQueue, Evaluate(experiment, tuning.TestRunId.Value, [best.Prompt], [tuning.ModelEndpoint!], Artifact(experiment.TestArtifact)));
            db.PublishOnCommit(new ExperimentStepCompleted
            {
                ExperimentId = experiment.Id,
                Step = "prompting",
                CompletedAt = clock.GetUtcNow(),
                Metrics = [new MetricValue { Name = $"best_prompt_score:{tuning.ModelEndpoint}", Value = PrimaryScore(best) }],
            });
            await SaveAndMaybeFinishAsync(experiment, context);
            return;
        }
        if (experiment.Candidates.FirstOrDefault(c => c.TestRunId == message.RunId && c.Status == CandidateStatus.Evaluating) is { } candidate)
        {
            var test = DatasetReader.Parse(await artifacts.ReadVerifiedAsync(Artifact(experiment.TestArtifact), context.CancellationToken)).Examples;
            var outcomes = await EvaluationResults.ReadOutcomesAsync(artifacts, message.Results, test.Select(ItemId).ToList(),
                TaskScoring.PrimaryItemScore(PrimaryMetric(experiment)), context.CancellationToken);
            candidate.Outcomes = [.. outcomes];
            candidate.Status = CandidateStatus.Succeeded;
            Log(experiment, "comparison", $"{candidate.Name} answered {outcomes.Count} test items.");
            await SaveAndMaybeFinishAsync(experiment, context);
        }
    }

    public async Task OnEvaluationFailedAsync(EvaluationFailed message, ConsumeContext context)
    {
        var experiment = await LoadAsync(message.ExperimentId, context);
        if (experiment?.Candidates.FirstOrDefault(c => c.TuningRunId == message.RunId || c.TestRunId == message.RunId) is not { } candidate || candidate.Status is CandidateStatus.Succeeded or CandidateStatus.Failed)
            return;
        candidate.Status = CandidateStatus.Failed;
        candidate.Error = message.Reason;
        Log(experiment, "comparison", $"{candidate.Name} could not be evaluated: {message.Reason}");
        await SaveAndMaybeFinishAsync(experiment, context);
    }

    /// <summary>Saves the experiment; when every candidate is settled, compares them and publishes the decision.</summary>
    private async Task SaveAndMaybeFinishAsync(Experiment experiment, ConsumeContext context)
    {
        experiment.Touch(clock.GetUtcNow());
        if (experiment.Candidates.Any(c => c.Status is CandidateStatus.Pending or CandidateStatus.Tuning or CandidateStatus.Evaluating))
        {
            await db.SaveChangesAsync(context.CancellationToken);
            return;
        }

        var finished = experiment.Candidates.Where(c => c.Status == CandidateStatus.Succeeded && c.Outcomes is not null).ToList();
        if (finished.Count == 0)
        {
            await FailAsync(experiment, "comparison", "No candidate produced results: " + string.Join("; ", experiment.Candidates.Select(c => $"{c.Name}: {c.Error}")), context);
            return;
        }
        var test = DatasetReader.Parse(await artifacts.ReadVerifiedAsync(Artifact(experiment.TestArtifact), context.CancellationToken)).Examples;
        var expected = test.ToDictionary(ItemId, e => e.Expected);
        var results = finished.Select(c => new CandidateResults(c.Name, c.Kind, c.Outcomes!,
            c.Kind == CandidateKind.FineTuned ? experiment.TrainingHours ?? 0 : 0)).ToList();
        var comparison = Comparer.Compare(results, expected, Settings(experiment));
        // The fit verdict belongs with a fine-tuned candidate that produced results.
        if (experiment.Training is { } fit && finished.Any(c => c.Name == fit.Candidate))
            comparison = comparison with { Training = fit, Decision = comparison.Decision + TrainingFits.Describe(fit) };
        var curation = Curation(experiment);
        var prefix = $"experiments/{experiment.Id:N}";
        var html = await artifacts.PutAsync(new MemoryStream(Encoding.UTF8.GetBytes(ReportWriter.ToHtml(experiment.Name, curation, comparison, clock.GetUtcNow()))), prefix, "report.html", "text/html", context.CancellationToken);
        var json = await artifacts.PutAsync(new MemoryStream(Encoding.UTF8.GetBytes(ReportWriter.ToJson(experiment.Name, curation, comparison))), prefix, "report.json", "application/json", context.CancellationToken);

        experiment.Status = ExperimentStatus.Succeeded;
        experiment.Step = "done";
        experiment.Winner = comparison.Winner;
        experiment.Decision = comparison.Decision;
        experiment.Result = comparison;
        experiment.ReportHtmlArtifact = html;
        experiment.ReportJsonArtifact = json;
        experiment.CompletedAt = clock.GetUtcNow();
        Log(experiment, "comparison", $"Decision: {comparison.Winner}. {comparison.Decision}");

        db.PublishOnCommit(new ExperimentStepCompleted
        {
            ExperimentId = experiment.Id,
            Step = "comparison",
            CompletedAt = clock.GetUtcNow(),
            Artifact = json,
            Metrics = comparison.Candidates.Select(c => new MetricValue { Name = $"{comparison.PrimaryMetric}:{c.Name}", Value = c.Accuracy, Lower = c.AccuracyLower, Upper = c.AccuracyUpper }).ToList(),
        });
        db.PublishOnCommit(new ExperimentCompleted
        {
            ExperimentId = experiment.Id,
            Winner = comparison.Winner,
            Decision = comparison.Decision,
            ParetoFront = comparison.Candidates.Where(c => c.OnParetoFront).Select(c => c.Name).ToList(),
            ReportHtml = html,
            ReportJson = json,
            CompletedAt = experiment.CompletedAt.Value,
        });
        await db.SaveChangesAsync(context.CancellationToken);
        ComparisonTelemetry.ExperimentsCompleted.Add(1, new KeyValuePair<string, object?>("status", "succeeded"));
    }

    /// <summary>The margin the request asked for (else the configured one) and the configured prices.</summary>
    private DecisionSettings Settings(Experiment experiment) => new()
    {
        NonInferiorityMargin = Request(experiment).NonInferiorityMargin ?? Options.NonInferiorityMargin,
        Task = Request(experiment).Task,
        PrimaryMetric = PrimaryMetric(experiment),
        GpuHourPrice = Options.GpuHourPrice,
        SelfServedHourPrice = Options.SelfServedHourPrice,
        KnnHourPrice = Options.KnnHourPrice,
        HorizonDays = Options.CostHorizonDays,
    };

    private async Task FailAsync(Experiment experiment, string step, string reason, ConsumeContext context)
    {
        experiment.Status = ExperimentStatus.Failed;
        experiment.Step = step;
        experiment.Error = reason;
        experiment.CompletedAt = clock.GetUtcNow();
        experiment.Touch(clock.GetUtcNow());
        Log(experiment, step, "Failed: " + reason);
        db.PublishOnCommit(new ExperimentFailed { ExperimentId = experiment.Id, Step = step, Reason = reason, FailedAt = experiment.CompletedAt.Value });
        await db.SaveChangesAsync(context.CancellationToken);
        ComparisonTelemetry.ExperimentsCompleted.Add(1, new KeyValuePair<string, object?>("status", "failed"));
        logger.LogWarning("Experiment {ExperimentId} failed at {Step}: {Reason}", experiment.Id, step, reason);
    }

    private async Task<Experiment?> LoadAsync(Guid? experimentId, ConsumeContext context) =>
        experimentId is { } id
            ? await db.Experiments.Include(e => e.Candidates).FirstOrDefaultAsync(e => e.Id == id, context.CancellationToken)
            : null;

    /// <summary>The command the experiment was started with, as stored.</summary>
    private static StartExperiment Request(Experiment e) => e.Request;

    private static string PrimaryMetric(Experiment e) => TaskScoring.PrimaryMetric(Request(e).Task, Curation(e));

    // The whole id, compact: sequential ids share their leading digits, so a prefix would name every experiment of a
    // few minutes alike (one collection, one set of prompts, one fine-tuned model for all of them).
    private static string Slug(Experiment e) => $"exp-{CompactId.Encode(e.Id)}";

    private void Log(Experiment experiment, string step, string message)
    {
        experiment.Log.Add(new ExperimentLogEntry { ExperimentId = experiment.Id, At = clock.GetUtcNow(), Step = step, Message = message });
        logger.LogInformation("Experiment {ExperimentId} [{Step}] {Message}", experiment.Id, step, message);
    }
}

// Over 400 lines on purpose: every request and response record of the Comparison experiments API in one place,
// so a client reads the whole public shape at once; they hold no logic.
using System.Text.Json.Serialization;
using AspireTune.Contracts.Common;
using AspireTune.Contracts.Datasets;

namespace AspireTune.Contracts.Comparison;

// The Comparison service's HTTP shapes that clients (the CLI, other teams) call. Members the service validates
// itself are optional in the request, so a missing one is answered with a ProblemDetails naming it.

/// <summary><c>POST /api/experiments</c>: start an experiment on a dataset given inline (JSONL text) or as a path inside the data folder.</summary>
public sealed record CreateExperimentRequest
{
    /// <summary>Human-readable name (1-200 characters).</summary>
    public string? Name { get; init; }

    /// <summary>The labelled dataset as JSONL text: one <c>{"input", "expected", "metadata"?}</c> per line.</summary>
    public string? Dataset { get; init; }

    /// <summary>Or: a JSONL file inside the data folder, absolute or relative to it.</summary>
    public string? DatasetPath { get; init; }

    /// <summary>Candidate kinds: any of <c>prompted</c>, <c>retrieval</c>, <c>fine-tuned</c>, <c>knn</c> (<see cref="CandidateKinds"/>). Default all four.</summary>
    public IReadOnlyList<string>? Candidates { get; init; }

    /// <summary>Evaluation model endpoint ids to prompt; default: the base model served by AspireTune itself.</summary>
    public IReadOnlyList<string>? ModelEndpoints { get; init; }

    /// <summary>Base model to fine-tune (registry id). Default <c>Comparison:DefaultBaseModel</c>.</summary>
    public string? BaseModel { get; init; }

    /// <summary>Held-out share for the final comparison, in (0, 0.5]. Default 0.2.</summary>
    public double? TestFraction { get; init; }

    /// <summary>Seed for splits. Default 42.</summary>
    public int? Seed { get; init; }

    /// <summary>Non-inferiority margin: accuracy points as a fraction in [0, 0.5] (0.02 = 2 points). Default <c>Comparison:NonInferiorityMargin</c>.</summary>
    public double? NonInferiorityMargin { get; init; }

    /// <summary>
    /// <c>classification</c> (default: <c>expected</c> is a label) or <c>generation</c> (<c>expected</c> is a reference
    /// answer, a string or a JSON object) (<see cref="ExperimentTasks"/>).
    /// </summary>
    public string? Task { get; init; }

    /// <summary>Generation only: what to do with each input, written into every prompt (1-2,000 characters). Default: a generic instruction.</summary>
    public string? Instruction { get; init; }

    /// <summary>Generation only: Evaluation endpoint id of a judge model that also scores every answer 1-10. Default <c>Comparison:JudgeEndpoint</c> (none).</summary>
    public string? JudgeEndpoint { get; init; }
}

/// <summary>The answer to <c>POST /api/experiments</c> (202).</summary>
public sealed record ExperimentAccepted
{
    /// <summary>Experiment id; the correlation id of its events.</summary>
    public required Guid Id { get; init; }

    /// <summary>The experiment's name.</summary>
    public required string Name { get; init; }

    /// <summary><c>queued</c>.</summary>
    public required string Status { get; init; }

    /// <summary>Where to follow it: <c>/api/experiments/{id}</c>.</summary>
    public required string Location { get; init; }
}

/// <summary><c>GET /api/experiments/{id}</c>: an experiment, its candidates and its log.</summary>
public sealed record ExperimentView
{
    /// <summary>Experiment id.</summary>
    public required Guid Id { get; init; }

    /// <summary>The experiment's name.</summary>
    public required string Name { get; init; }

    /// <summary><c>queued</c>, <c>running</c>, <c>succeeded</c>, <c>failed</c> or <c>cancelled</c>.</summary>
    public required string Status { get; init; }

    /// <summary>The workflow step it is at: <c>curation</c>, <c>candidates</c>, <c>done</c>, ...</summary>
    public required string Step { get; init; }

    /// <summary>When it was created.</summary>
    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>When it last changed.</summary>
    public required DateTimeOffset UpdatedAt { get; init; }

    /// <summary>When it finished; null while it runs.</summary>
    public DateTimeOffset? CompletedAt { get; init; }

    /// <summary>SHA-256 of the dataset as received.</summary>
    public string? DatasetSha256 { get; init; }

    /// <summary>What the candidates are asked to do.</summary>
    public ExperimentTask Task { get; init; }

    /// <summary>What curation did; null before curation.</summary>
    public CurationReport? Curation { get; init; }

    /// <summary>The candidates, by name.</summary>
    public required IReadOnlyList<CandidateView> Candidates { get; init; }

    /// <summary>The winning candidate's name, when decided.</summary>
    public string? Winner { get; init; }

    /// <summary>The written decision, when decided.</summary>
    public string? Decision { get; init; }

    /// <summary>Why it failed.</summary>
    public string? Error { get; init; }

    /// <summary>The HTML report's URL (<c>/api/experiments/{id}/report</c>; JSON at <c>report.json</c>), when written.</summary>
    public string? ReportUrl { get; init; }

    /// <summary>What happened, in order.</summary>
    public required IReadOnlyList<LogView> Log { get; init; }
}

/// <summary>One candidate of an experiment.</summary>
public sealed record CandidateView
{
    /// <summary>The candidate's name (<see cref="CandidateName"/>: <c>kind:target</c>).</summary>
    public required string Name { get; init; }

    /// <summary>Its kind.</summary>
    public required CandidateKind Kind { get; init; }

    /// <summary><c>pending</c>, <c>tuning</c>, <c>evaluating</c>, <c>succeeded</c> or <c>failed</c>.</summary>
    public required string Status { get; init; }

    /// <summary>The Evaluation endpoint id it is run on, when it is a model.</summary>
    public string? ModelEndpoint { get; init; }

    /// <summary>Prompt versions tried, then kept (<c>name@version</c>, comma-separated).</summary>
    public string? Prompts { get; init; }

    /// <summary>Why it failed.</summary>
    public string? Error { get; init; }
}

/// <summary>One line of an experiment's log.</summary>
public sealed record LogView
{
    /// <summary>When.</summary>
    public required DateTimeOffset At { get; init; }

    /// <summary>The workflow step.</summary>
    public required string Step { get; init; }

    /// <summary>What happened.</summary>
    public required string Message { get; init; }
}

/// <summary>What curation did to a dataset, stored with the experiment and shown in the report.</summary>
public sealed record CurationReport
{
    /// <summary>Non-blank lines received.</summary>
    public required int Received { get; init; }

    /// <summary>Lines that were not examples.</summary>
    public required int FormatErrors { get; init; }

    /// <summary>The first of those lines (at most 50), with why.</summary>
    public required IReadOnlyList<DatasetError> Errors { get; init; }

    /// <summary>Exact copies (after normalisation) removed.</summary>
    public required int ExactDuplicatesRemoved { get; init; }

    /// <summary>Near duplicates removed.</summary>
    public required int NearDuplicatesRemoved { get; init; }

    /// <summary>Jaccard similarity on word 3-shingles from which two inputs count as near duplicates.</summary>
    public required double NearDuplicateThreshold { get; init; }

    /// <summary>Inputs that appeared with different labels; all their copies are dropped (the label is unknowable).</summary>
    public required int ConflictingLabelsRemoved { get; init; }

    /// <summary>Examples kept.</summary>
    public required int Kept { get; init; }

    /// <summary>Kept examples per label (empty for generation).</summary>
    public required IReadOnlyDictionary<string, int> LabelCounts { get; init; }

    /// <summary>Generation: the fields of the references when every one is a JSON object (scored by field match, named in the prompts); else null.</summary>
    public IReadOnlyList<string>? ReferenceFields { get; init; }

    /// <summary>Generation: characters of the longest reference answer (sizes the output budget); 0 for classification.</summary>
    public int LongestReference { get; init; }

    /// <summary>Largest label count over smallest; above 3 the report warns that accuracy flatters the majority label.</summary>
    public required double ImbalanceRatio { get; init; }

    /// <summary>Training examples.</summary>
    public required int Train { get; init; }

    /// <summary>Validation examples (prompt selection, early stopping).</summary>
    public required int Validation { get; init; }

    /// <summary>Held-out test examples every candidate is compared on.</summary>
    public required int Test { get; init; }

    /// <summary>Near-duplicate pairs found across splits after splitting (leakage); zero unless the threshold is raised.</summary>
    public required int CrossSplitNearDuplicates { get; init; }

    /// <summary>What to keep in mind when reading the results.</summary>
    public required IReadOnlyList<string> Warnings { get; init; }
}

/// <summary><c>GET /api/experiments/{id}/report.json</c>: the decision report's facts. Undefined statistics are null.</summary>
public sealed record ExperimentReport
{
    /// <summary>The experiment's name.</summary>
    public required string Experiment { get; init; }

    /// <summary>What the candidates were asked to do.</summary>
    public ExperimentTask Task { get; init; }

    /// <summary>
    /// The score candidates are ranked, tested and held non-inferior by (each item scored 0-1; the candidates'
    /// <c>accuracy</c> is its mean): <c>accuracy</c> for classification; for generation <c>json_fields</c> when every
    /// reference is a JSON object, else <c>token_f1</c>.
    /// </summary>
    public string PrimaryMetric { get; init; } = "accuracy";

    /// <summary>What curation did.</summary>
    public required CurationReport Curation { get; init; }

    /// <summary>The winning candidate's name.</summary>
    public required string Winner { get; init; }

    /// <summary>The written decision.</summary>
    public required string Decision { get; init; }

    /// <summary>Every candidate that produced results.</summary>
    public required IReadOnlyList<CandidateSummary> Candidates { get; init; }

    /// <summary>Paired tests against the most accurate candidate.</summary>
    public required IReadOnlyList<PairwiseTest> Pairwise { get; init; }

    /// <summary>Each other candidate against the most accurate one, at the experiment's margin.</summary>
    public IReadOnlyList<NonInferiorityVerdict> NonInferiority { get; init; } = [];

    /// <summary>Days the one-off (training) costs are spread over.</summary>
    public double CostHorizonDays { get; init; }

    /// <summary>What owning each candidate costs.</summary>
    public IReadOnlyList<OwnershipCost> Costs { get; init; } = [];

    /// <summary>Which candidate is cheapest at which volume, among all candidates.</summary>
    public IReadOnlyList<CheapestVolumeRange> CheapestByVolume { get; init; } = [];

    /// <summary>The same among the most accurate candidate and those non-inferior to it.</summary>
    public IReadOnlyList<CheapestVolumeRange> CheapestAcceptableByVolume { get; init; } = [];

    /// <summary>Per candidate: answers by expected label.</summary>
    public IReadOnlyList<ConfusionMatrix> Confusion { get; init; } = [];

    /// <summary>The fine-tuned candidate's loss curves and fit verdict; null without a trained candidate.</summary>
    public TrainingFit? Training { get; init; }
}

/// <summary>How the fine-tuned candidate's training went: its loss curves and the fit verdict the training job read from them.</summary>
public sealed record TrainingFit
{
    /// <summary>The fine-tuned candidate.</summary>
    public required string Candidate { get; init; }

    /// <summary><c>good_fit</c>, <c>overfitting</c>, <c>underfitting</c> or <c>inconclusive</c>; null when the job gave none.</summary>
    public string? Verdict { get; init; }

    /// <summary>What the curves suggest doing next.</summary>
    public string? Advice { get; init; }

    /// <summary>How the verdict is read from the curves.</summary>
    public required string Rule { get; init; }

    /// <summary>Step of the checkpoint kept (lowest validation loss; early stopping restores it).</summary>
    public required int BestStep { get; init; }

    /// <summary>Training and validation loss by step.</summary>
    public required IReadOnlyList<AspireTune.Contracts.FineTuning.TrainingCurvePoint> Curve { get; init; }
}

/// <summary>"<see cref="Candidate"/> is not worse than <see cref="Reference"/> by more than <see cref="Margin"/>" (accuracy as fractions).</summary>
public sealed record NonInferiorityVerdict
{
    /// <summary>The candidate tested.</summary>
    public required string Candidate { get; init; }

    /// <summary>The most accurate candidate it is held against.</summary>
    public required string Reference { get; init; }

    /// <summary>Items both answered.</summary>
    public required int Items { get; init; }

    /// <summary>Mean paired accuracy difference, candidate minus reference.</summary>
    public required double Difference { get; init; }

    /// <summary>One-sided lower confidence bound of the difference.</summary>
    public required double LowerBound { get; init; }

    /// <summary>The margin (0.02 = 2 points).</summary>
    public required double Margin { get; init; }

    /// <summary>Confidence of the bound (0.95).</summary>
    public required double Confidence { get; init; }

    /// <summary>Whether the bound lies above minus the margin.</summary>
    public required bool NonInferior { get; init; }
}

/// <summary>What owning a candidate costs, in USD.</summary>
public sealed record OwnershipCost
{
    /// <summary>The candidate.</summary>
    public required string Candidate { get; init; }

    /// <summary>One-off cost: training GPU-hours at their configured price.</summary>
    public required double OneOffUsd { get; init; }

    /// <summary>Fixed cost a day: hosting a self-served model (or the kNN index) around the clock.</summary>
    public required double FixedPerDayUsd { get; init; }

    /// <summary>Cost per request: tokens at the endpoint's prices (mean over the test items).</summary>
    public required double PerRequestUsd { get; init; }
}

/// <summary>From <see cref="FromRequestsPerDay"/> up to <see cref="ToRequestsPerDay"/> (null: no limit) requests a day, <see cref="Candidate"/> is the cheapest.</summary>
public sealed record CheapestVolumeRange
{
    /// <summary>The cheapest candidate in the range.</summary>
    public required string Candidate { get; init; }

    /// <summary>Lower end (requests a day): the break-even volume where it becomes the cheapest.</summary>
    public required double FromRequestsPerDay { get; init; }

    /// <summary>Upper end; null when it stays the cheapest.</summary>
    public double? ToRequestsPerDay { get; init; }
}

/// <summary>Counts of answers by expected label (rows) and answer (columns: the labels, then <c>(invalid)</c> and <c>(error)</c>).</summary>
public sealed record ConfusionMatrix
{
    /// <summary>The candidate.</summary>
    public required string Candidate { get; init; }

    /// <summary>Expected labels (rows).</summary>
    public required IReadOnlyList<string> Labels { get; init; }

    /// <summary>Answers (columns).</summary>
    public required IReadOnlyList<string> Columns { get; init; }

    /// <summary>Counts[row][column].</summary>
    public required IReadOnlyList<IReadOnlyList<int>> Counts { get; init; }
}

/// <summary>One candidate's results on the test split. Latencies are in seconds.</summary>
public sealed record CandidateSummary
{
    /// <summary>The candidate's name.</summary>
    public required string Name { get; init; }

    /// <summary>Its kind.</summary>
    public required CandidateKind Kind { get; init; }

    /// <summary>Test items answered or attempted.</summary>
    public required int Items { get; init; }

    /// <summary>Items whose call failed.</summary>
    public required int Errors { get; init; }

    /// <summary>Answers that name no label (a near-miss of one included): wrong, and counted apart from wrong labels.</summary>
    public int Invalid { get; init; }

    /// <summary>Mean retrieved examples the prompt held after fitting the model's context; null when its prompt shows none.</summary>
    public double? ExamplesShownMean { get; init; }

    /// <summary>Mean examples retrieval offered for the prompt; null as above.</summary>
    public double? ExamplesRetrievedMean { get; init; }

    /// <summary>Items whose input had to be cut to fit the model's context.</summary>
    public int InputsTruncated { get; init; }

    /// <summary>
    /// Accuracy when the answer is the label the model finds most likely after the prompt (log-likelihood per byte,
    /// lm-evaluation-harness multiple choice); null where the endpoint cannot score.
    /// </summary>
    public double? LikelihoodAccuracy { get; init; }

    /// <summary>Mean of the primary metric over the items (<see cref="ExperimentReport.PrimaryMetric"/>): for classification the share answered right.</summary>
    [JsonConverter(typeof(FiniteOrNullConverter))]
    public required double Accuracy { get; init; }

    /// <summary>Generation: the mean of every score (exact, token_f1, rouge_l, json_fields, judge) with its 95% bootstrap interval; empty for classification.</summary>
    public IReadOnlyList<MetricValue> Metrics { get; init; } = [];

    /// <summary>95% bootstrap interval of the accuracy, lower end.</summary>
    [JsonConverter(typeof(FiniteOrNullConverter))]
    public required double AccuracyLower { get; init; }

    /// <summary>95% bootstrap interval of the accuracy, upper end.</summary>
    [JsonConverter(typeof(FiniteOrNullConverter))]
    public required double AccuracyUpper { get; init; }

    /// <summary>Macro-averaged F1 over the labels.</summary>
    [JsonConverter(typeof(FiniteOrNullConverter))]
    public required double MacroF1 { get; init; }

    /// <summary>Median latency per request (s); null without a successful call.</summary>
    [JsonConverter(typeof(FiniteOrNullConverter))]
    public required double LatencyP50 { get; init; }

    /// <summary>95th percentile latency (s).</summary>
    [JsonConverter(typeof(FiniteOrNullConverter))]
    public required double LatencyP95 { get; init; }

    /// <summary>99th percentile latency (s).</summary>
    [JsonConverter(typeof(FiniteOrNullConverter))]
    public required double LatencyP99 { get; init; }

    /// <summary>Mean cost of one request times 1,000, in USD.</summary>
    [JsonConverter(typeof(FiniteOrNullConverter))]
    public required double CostPer1k { get; init; }

    /// <summary>Whether no other candidate is at least as accurate, as fast and as cheap.</summary>
    public required bool OnParetoFront { get; init; }
}

/// <summary>A paired comparison of two candidates on the items both answered.</summary>
public sealed record PairwiseTest
{
    /// <summary>The first candidate (the most accurate).</summary>
    public required string A { get; init; }

    /// <summary>The other candidate.</summary>
    public required string B { get; init; }

    /// <summary>Accuracy of A minus accuracy of B, on the items both answered.</summary>
    [JsonConverter(typeof(FiniteOrNullConverter))]
    public required double Difference { get; init; }

    /// <summary>95% bootstrap interval of the difference, lower end.</summary>
    [JsonConverter(typeof(FiniteOrNullConverter))]
    public required double DifferenceLower { get; init; }

    /// <summary>95% bootstrap interval of the difference, upper end.</summary>
    [JsonConverter(typeof(FiniteOrNullConverter))]
    public required double DifferenceUpper { get; init; }

    /// <summary>Items only A answered right (graded scores: items A scored higher on).</summary>
    public required int AOnlyCorrect { get; init; }

    /// <summary>Items only B answered right (graded scores: items B scored higher on).</summary>
    public required int BOnlyCorrect { get; init; }

    /// <summary>Exact McNemar p-value of the discordant pairs (graded scores: the exact sign test, the same binomial on the items that differ).</summary>
    [JsonConverter(typeof(FiniteOrNullConverter))]
    public required double McNemarP { get; init; }

    /// <summary>Whether <see cref="McNemarP"/> is below 0.05.</summary>
    public bool Significant => McNemarP < 0.05;
}

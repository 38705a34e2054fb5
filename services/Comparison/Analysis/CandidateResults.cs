using AspireTune.Contracts.Comparison;

namespace AspireTune.Comparison.Analysis;

/// <summary>
/// One candidate's answer to one test item. <paramref name="Invalid"/>: the answer names no label (a near-miss such
/// as <c>fion</c> for <c>fiction</c> included), so it is wrong for a reason other than choosing the wrong label.
/// <paramref name="ExamplesShown"/>: examples its prompt held after fitting the model's context (null: none asked).
/// </summary>
public sealed record ItemOutcome(string ItemId, bool Correct, double LatencySeconds, double CostUsd, string? Output = null, string? Error = null,
    bool Invalid = false, int? ExamplesShown = null, int? ExamplesRetrieved = null, bool InputTruncated = false, bool? LikelihoodCorrect = null)
{
    /// <summary>Generation: the graded primary score in [0, 1] that ranks and tests candidates; null for classification (<see cref="Correct"/> counts).</summary>
    public double? Score { get; init; }

    /// <summary>Generation: every score of the item (exact, token_f1, rouge_l, json_fields, judge); null for classification.</summary>
    public IReadOnlyDictionary<string, double>? Scores { get; init; }

    /// <summary>What the comparison averages and pairs: the graded score, else 1 for a right answer and 0 otherwise.</summary>
    public double Quality => Score ?? (Correct ? 1 : 0);
}

/// <summary>A candidate's results on the shared test split; <paramref name="TrainingGpuHours"/> what training it took.</summary>
public sealed record CandidateResults(string Name, CandidateKind Kind, IReadOnlyList<ItemOutcome> Items, double TrainingGpuHours = 0);

/// <summary>The comparison of every candidate that produced results.</summary>
public sealed record ComparisonResult
{
    public required IReadOnlyList<CandidateSummary> Candidates { get; init; }
    public required IReadOnlyList<PairwiseTest> Pairwise { get; init; }
    public required string Winner { get; init; }
    public required string Decision { get; init; }
    /// <summary>What the candidates were asked to do.</summary>
    public ExperimentTask Task { get; init; }
    /// <summary>The metric the candidates' <c>Accuracy</c> holds the mean of (<c>accuracy</c> for classification).</summary>
    public string PrimaryMetric { get; init; } = "accuracy";
    /// <summary>Each other candidate against the most accurate one, at the experiment's margin.</summary>
    public IReadOnlyList<NonInferiorityVerdict> NonInferiority { get; init; } = [];
    /// <summary>What owning each candidate costs (USD): one-off, per day, per request.</summary>
    public IReadOnlyList<AspireTune.Analysis.CandidateCost> Costs { get; init; } = [];
    /// <summary>Which candidate is cheapest at which volume (requests a day), among all candidates.</summary>
    public IReadOnlyList<AspireTune.Analysis.CheapestRange> CheapestByVolume { get; init; } = [];
    /// <summary>The same among the most accurate candidate and those non-inferior to it: the ones worth choosing from.</summary>
    public IReadOnlyList<AspireTune.Analysis.CheapestRange> CheapestAcceptableByVolume { get; init; } = [];
    /// <summary>Days the one-off (training) cost is spread over.</summary>
    public double CostHorizonDays { get; init; }
    /// <summary>Per candidate: expected label by row, answered label, invalid or error by column.</summary>
    public IReadOnlyList<ConfusionMatrix> Confusion { get; init; } = [];
    /// <summary>The fine-tuned candidate's loss curves and fit verdict, when one was trained.</summary>
    public TrainingFit? Training { get; init; }
}

/// <summary>
/// What the decision weighs besides accuracy (USD): the non-inferiority margin, and the prices of owning a candidate.
/// A candidate whose calls cost nothing is self-served (it runs on our hardware) and pays hosting by the hour.
/// </summary>
public sealed record DecisionSettings
{
    /// <summary>Largest accuracy loss against the most accurate candidate still called non-inferior (0.02 = 2 points).</summary>
    public double NonInferiorityMargin { get; init; } = 0.02;
    /// <summary>Classification (labels, confusion matrices) or generation (graded scores, no labels).</summary>
    public ExperimentTask Task { get; init; }
    /// <summary>Name of the score the candidates are ranked by: <c>accuracy</c>, or a generation metric such as <c>json_fields</c>.</summary>
    public string PrimaryMetric { get; init; } = "accuracy";
    public double Confidence { get; init; } = 0.95;
    public double GpuHourPrice { get; init; }
    public double SelfServedHourPrice { get; init; }
    public double KnnHourPrice { get; init; }
    public double HorizonDays { get; init; } = 30;
}

namespace AspireTune.Comparison.Analysis;

/// <summary>
/// One candidate's answer to one test item. <paramref name="Invalid"/>: the answer names no label (a near-miss such
/// as <c>fion</c> for <c>fiction</c> included), so it is wrong for a reason other than choosing the wrong label.
/// <paramref name="ExamplesShown"/>: examples its prompt held after fitting the model's context (null: none asked).
/// </summary>
public sealed record ItemOutcome(string ItemId, bool Correct, double LatencySeconds, double CostUsd, string? Output = null, string? Error = null,
    bool Invalid = false, int? ExamplesShown = null, int? ExamplesRetrieved = null, bool InputTruncated = false);

/// <summary>A candidate's results on the shared test split; <paramref name="TrainingGpuHours"/> what training it took.</summary>
public sealed record CandidateResults(string Name, string Kind, IReadOnlyList<ItemOutcome> Items, double TrainingGpuHours = 0);

public sealed record CandidateSummary
{
    public required string Name { get; init; }
    public required string Kind { get; init; }
    public required int Items { get; init; }
    public required int Errors { get; init; }
    /// <summary>Answers that name no label (counted as wrong, and apart from wrong labels).</summary>
    public int Invalid { get; init; }
    /// <summary>Mean examples shown per prompt after fitting the context; null for candidates whose prompt shows none.</summary>
    public double? ExamplesShownMean { get; init; }
    /// <summary>Mean examples retrieval offered per prompt; null as above.</summary>
    public double? ExamplesRetrievedMean { get; init; }
    /// <summary>Items whose input had to be cut to fit the model's context.</summary>
    public int InputsTruncated { get; init; }
    public required double Accuracy { get; init; }
    public required double AccuracyLower { get; init; }
    public required double AccuracyUpper { get; init; }
    public required double MacroF1 { get; init; }
    public required double LatencyP50 { get; init; }
    public required double LatencyP95 { get; init; }
    public required double LatencyP99 { get; init; }
    /// <summary>Mean cost of one request times 1,000, in USD.</summary>
    public required double CostPer1k { get; init; }
    public required bool OnParetoFront { get; init; }
}

public sealed record PairwiseTest
{
    public required string A { get; init; }
    public required string B { get; init; }
    /// <summary>Accuracy of A minus accuracy of B, on the items both answered.</summary>
    public required double Difference { get; init; }
    public required double DifferenceLower { get; init; }
    public required double DifferenceUpper { get; init; }
    public required int AOnlyCorrect { get; init; }
    public required int BOnlyCorrect { get; init; }
    public required double McNemarP { get; init; }
    public bool Significant => McNemarP < 0.05;
}

public sealed record ComparisonResult
{
    public required IReadOnlyList<CandidateSummary> Candidates { get; init; }
    public required IReadOnlyList<PairwiseTest> Pairwise { get; init; }
    public required string Winner { get; init; }
    public required string Decision { get; init; }
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
}

/// <summary>"<see cref="Candidate"/> is not worse than <see cref="Reference"/> by more than <see cref="Margin"/>" (accuracy as fractions).</summary>
public sealed record NonInferiorityVerdict(string Candidate, string Reference, int Items, double Difference, double LowerBound, double Margin, double Confidence, bool NonInferior);

/// <summary>Counts of answers by expected label (rows) and answered label (columns, then <c>(invalid)</c> and <c>(error)</c>).</summary>
public sealed record ConfusionMatrix(string Candidate, IReadOnlyList<string> Labels, IReadOnlyList<string> Columns, IReadOnlyList<IReadOnlyList<int>> Counts);

/// <summary>
/// What the decision weighs besides accuracy (USD): the non-inferiority margin, and the prices of owning a candidate.
/// A candidate whose calls cost nothing is self-served (it runs on our hardware) and pays hosting by the hour.
/// </summary>
public sealed record DecisionSettings
{
    /// <summary>Largest accuracy loss against the most accurate candidate still called non-inferior (0.02 = 2 points).</summary>
    public double NonInferiorityMargin { get; init; } = 0.02;
    public double Confidence { get; init; } = 0.95;
    public double GpuHourPrice { get; init; }
    public double SelfServedHourPrice { get; init; }
    public double KnnHourPrice { get; init; }
    public double HorizonDays { get; init; } = 30;
}

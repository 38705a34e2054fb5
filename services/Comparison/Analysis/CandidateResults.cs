namespace AspireTune.Comparison.Analysis;

/// <summary>One candidate's answer to one test item.</summary>
public sealed record ItemOutcome(string ItemId, bool Correct, double LatencySeconds, double CostUsd, string? Output = null, string? Error = null);

/// <summary>A candidate's results on the shared test split.</summary>
public sealed record CandidateResults(string Name, string Kind, IReadOnlyList<ItemOutcome> Items);

public sealed record CandidateSummary
{
    public required string Name { get; init; }
    public required string Kind { get; init; }
    public required int Items { get; init; }
    public required int Errors { get; init; }
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
}

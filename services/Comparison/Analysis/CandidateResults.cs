using AspireTune.Contracts.Comparison;

namespace AspireTune.Comparison.Analysis;

/// <summary>One candidate's answer to one test item.</summary>
public sealed record ItemOutcome(string ItemId, bool Correct, double LatencySeconds, double CostUsd, string? Output = null, string? Error = null);

/// <summary>A candidate's results on the shared test split.</summary>
public sealed record CandidateResults(string Name, CandidateKind Kind, IReadOnlyList<ItemOutcome> Items);

/// <summary>The comparison of every candidate that produced results.</summary>
public sealed record ComparisonResult
{
    public required IReadOnlyList<CandidateSummary> Candidates { get; init; }
    public required IReadOnlyList<PairwiseTest> Pairwise { get; init; }
    public required string Winner { get; init; }
    public required string Decision { get; init; }
}

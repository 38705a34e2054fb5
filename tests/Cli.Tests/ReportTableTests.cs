using AspireTune.Cli.Commands;
using AspireTune.Cli.Infrastructure;
using AspireTune.Contracts.Common;
using AspireTune.Contracts.Comparison;

namespace AspireTune.Cli.Tests;

/// <summary>The decision table <c>experiment report</c> and <c>experiment run</c> print.</summary>
public sealed class ReportTableTests
{
    private static CandidateSummary Candidate(string name, double primary, params (string Name, double Value)[] metrics) => new()
    {
        Name = name, Kind = CandidateKind.Prompted, Items = 12, Errors = 0, Accuracy = primary, AccuracyLower = primary - 0.1, AccuracyUpper = primary + 0.05,
        MacroF1 = double.NaN, LatencyP50 = 0.2, LatencyP95 = 0.4, LatencyP99 = 0.5, CostPer1k = 0.016, OnParetoFront = true,
        Metrics = metrics.Select(m => new MetricValue { Name = m.Name, Value = m.Value }).ToList(),
    };

    [Fact]
    public void ReportTable_GenerationTask_ShowsThePrimaryMetricAndTwoOthersWithin80Columns()
    {
        var report = new ExperimentReport
        {
            Experiment = "extract", Task = ExperimentTask.Generation, PrimaryMetric = "json_fields", Winner = "prompted:mock-gpt", Decision = "",
            Curation = new CurationReport
            {
                Received = 60, FormatErrors = 0, Errors = [], ExactDuplicatesRemoved = 0, NearDuplicatesRemoved = 0, NearDuplicateThreshold = 0.9,
                ConflictingLabelsRemoved = 0, Kept = 60, LabelCounts = new Dictionary<string, int>(), ImbalanceRatio = 0, Train = 41, Validation = 7, Test = 12,
                CrossSplitNearDuplicates = 0, Warnings = [],
            },
            Candidates =
            [
                Candidate("prompted:mock-gpt", 0.944, ("exact", 0.833), ("json_fields", 0.944), ("rouge_l", 0.986), ("token_f1", 0.975)),
                Candidate("fine-tuned:exp-aspiretune-tiny-0123456789abcdef", 0.0, ("exact", 0), ("json_fields", 0), ("rouge_l", 0.1), ("token_f1", 0.05)),
            ],
            Pairwise = [],
        };
        var output = new StringWriter();
        var io = new CliIo(output, new StringWriter(), interactive: false);
        io.Out.Profile.Width = 80;

        io.Write(ExperimentInspectCommands.ReportTable(report));

        var lines = output.ToString().Split('\n');
        lines.Should().OnlyContain(l => l.TrimEnd().Length <= 80);
        var text = output.ToString();
        text.Should().Contain("fields %").And.Contain("tok F1 %").And.Contain("R-L %").And.NotContain("invalid");
        text.Should().Contain("94.4").And.Contain("97.5").And.Contain("98.6").And.Contain("json_fields, p95 latency, cost");
    }
}

using System.Text;
using AspireTune.Comparison.Analysis;
using AspireTune.Comparison.Curation;
using AspireTune.Comparison.Reports;
using AspireTune.Comparison.Workflow;
using AspireTune.Contracts.Comparison;
using AspireTune.Contracts.Evaluation;

namespace AspireTune.Comparison.Tests;

/// <summary>Generation tasks: curation without labels, graded outcomes, and the comparison on the primary metric.</summary>
public sealed class GenerationTaskTests
{
    private static readonly DecisionSettings Generation = new() { Task = ExperimentTask.Generation, PrimaryMetric = "json_fields", NonInferiorityMargin = 0.1 };

    private static CandidateResults Graded(string name, CandidateKind kind, double[] fields, double cost) =>
        new(name, kind, fields.Select((f, i) => new ItemOutcome($"item-{i}", f >= 0.999, 0.1, cost, "{}")
        {
            Score = f,
            Scores = new Dictionary<string, double> { ["json_fields"] = f, ["token_f1"] = f / 2 },
        }).ToList());

    [Fact]
    public void Compare_GradedScores_RanksByTheMeanAndPairsWithTheSignTestWorkedByHand()
    {
        // Differences A - B: 0.5, 0, 0.2, 0.3, -0.1, 0.6 -> mean 0.25; A higher on 4 items, B on 1:
        // p = 2 * P(X <= 1 | n = 5, 1/2) = 2 * 6 / 32 = 0.375.
        var a = Graded("prompted:gpt", CandidateKind.Prompted, [1.0, 0.8, 0.6, 0.5, 0.5, 0.9], 0.001);
        var b = Graded("fine-tuned:tiny", CandidateKind.FineTuned, [0.5, 0.8, 0.4, 0.2, 0.6, 0.3], 0);
        var expected = Enumerable.Range(0, 6).ToDictionary(i => $"item-{i}", _ => "{\"x\": 1}");

        var result = Comparer.Compare([b, a], expected, Generation);

        var best = result.Candidates.Single(c => c.Name == "prompted:gpt");
        best.Accuracy.Should().BeApproximately(4.3 / 6, 1e-12);
        best.Metrics.Select(m => m.Name).Should().Equal("json_fields", "token_f1");
        best.Metrics[1].Value.Should().BeApproximately(4.3 / 12, 1e-12);
        double.IsNaN(best.MacroF1).Should().BeTrue("macro-F1 is about labels");
        var paired = result.Pairwise.Single();
        (paired.A, paired.B, paired.AOnlyCorrect, paired.BOnlyCorrect).Should().Be(("prompted:gpt", "fine-tuned:tiny", 4, 1));
        paired.Difference.Should().BeApproximately(0.25, 1e-12);
        paired.McNemarP.Should().BeApproximately(0.375, 1e-12);
        result.NonInferiority.Single().Difference.Should().BeApproximately(-0.25, 1e-12);
        result.Confusion.Should().BeEmpty();
        // Not significant, and the self-served candidate costs nothing per call: it is recommended.
        result.Winner.Should().Be("fine-tuned:tiny");
        result.Decision.Should().Contain("mean json_fields").And.Contain("sign test p = 0.375");
    }

    [Fact]
    public void Report_GenerationTask_ShowsThePrimaryMetricAndEveryScore()
    {
        var expected = Enumerable.Range(0, 6).ToDictionary(i => $"item-{i}", _ => "{\"x\": 1}");
        var result = Comparer.Compare([Graded("prompted:gpt", CandidateKind.Prompted, [1, 1, 1, 0.5, 0.5, 1], 0.001)], expected, Generation);
        var curation = Curator.Curate(References(10), 0.2, 0.1, 1, task: ExperimentTask.Generation).Report;

        var html = ReportWriter.ToHtml("extract", curation, result, DateTimeOffset.UnixEpoch);
        var json = ReportWriter.ToJson("extract", curation, result);

        html.Should().Contain("Mean json_fields on the held-out test split").And.Contain("json_fields (primary)").And.Contain("token_f1")
            .And.Contain("JSON objects with fields name, age").And.NotContain("Confusion matrices");
        json.Should().Contain("\"task\": \"generation\"").And.Contain("\"primaryMetric\": \"json_fields\"");
    }

    [Fact]
    public void Report_TrainedCandidate_DrawsBothLossCurvesAndStatesTheVerdictWithItsRule()
    {
        var expected = Enumerable.Range(0, 6).ToDictionary(i => $"item-{i}", _ => "{\"x\": 1}");
        var result = Comparer.Compare([Graded("fine-tuned:tiny", CandidateKind.FineTuned, [1, 1, 1, 0.5, 0.5, 1], 0)], expected, Generation);
        var fit = TrainingFits.From("fine-tuned:tiny", new AspireTune.Contracts.FineTuning.TrainingCompleted
        {
            JobId = Guid.NewGuid(), ModelId = "m", BaseModel = "tiny", DatasetSha256 = "0", BestMetrics = [], BestStep = 4, ServedEndpoint = "http://x/v1",
            Duration = TimeSpan.FromMinutes(1), CompletedAt = DateTimeOffset.UnixEpoch, FitVerdict = "overfitting", FitAdvice = "Validation loss rose.",
            Curve =
            [
                new() { Step = 2, Epoch = 0.5, TrainLoss = 3.0, ValidLoss = 3.2 },
                new() { Step = 3, Epoch = 0.75, TrainLoss = 2.5 },
                new() { Step = 4, Epoch = 1, TrainLoss = 2.0, ValidLoss = 2.4 },
                new() { Step = 6, Epoch = 1.5, TrainLoss = 1.1, ValidLoss = 2.9 },
            ],
        });

        var html = ReportWriter.ToHtml("x", Curator.Curate(References(10), 0.2, 0.1, 1, task: ExperimentTask.Generation).Report, result with { Training = fit }, DateTimeOffset.UnixEpoch);

        html.Should().Contain("Training and validation loss by step").And.Contain("Fit: overfitting.").And.Contain("Rule: " + System.Net.WebUtility.HtmlEncode(AspireTune.Analysis.FitRule.Text));
        html.Split("<polyline").Should().HaveCount(3, "one line for training loss, one for validation loss");
        html.Should().Contain("<title>best step 4</title>").And.Contain("validation loss 2.9 at step 6");
        TrainingFits.Describe(fit).Should().Be(" Training of fine-tuned:tiny: overfitting (validation loss 3.2 at step 2, lowest 2.4, last 2.9 at step 6; best step 4).");
    }

    private static string References(int n, bool oneText = false)
    {
        var sb = new StringBuilder();
        for (var i = 0; i < n; i++)
            sb.AppendLine(oneText && i == 3
                ? $"{{\"input\":\"record {i} of the registry, filed on day {i * 3}\",\"expected\":\"a text answer\"}}"
                : $"{{\"input\":\"record {i} of the registry, filed on day {i * 3}\",\"expected\":{{\"name\":\"person {i}\",\"age\":{20 + i}}}}}");
        return sb.ToString();
    }

    [Fact]
    public void ReferenceScoresOf_KnnAnswers_ScoredAsTheRunScorersScoreWorkedByHand()
    {
        var json = Curator.Curate(References(10), 0.2, 0.1, 1, task: ExperimentTask.Generation).Report;
        var text = Curator.Curate(References(10, oneText: true), 0.2, 0.1, 1, task: ExperimentTask.Generation).Report;

        // The nearest example's reference names another person of the same age: one field of two (25 and 25.0 are one
        // number). As words (punctuation dropped) the texts are "nameperson 3age25" and "nameperson 5age250": F1 1/2.
        TaskScoring.ReferenceScoresOf("{\"name\":\"person 3\",\"age\":25}", "{\"name\":\"Person 5!\",\"age\":25.0}", json)
            .Should().Equal(new Dictionary<string, double> { ["exact"] = 0, ["token_f1"] = 0.5, ["rouge_l"] = 0.5, ["json_fields"] = 0.5 });
        // Text: 3 of 3 answer words in the reference of 4 words: precision 1, recall 3/4, F1 = 6/7 (LCS 3 too).
        var scores = TaskScoring.ReferenceScoresOf("the cat sat", "The cat sat down.", text);
        scores.Keys.Should().BeEquivalentTo(["exact", "token_f1", "rouge_l"], "no json_fields without JSON references");
        scores["exact"].Should().Be(0);
        scores["token_f1"].Should().BeApproximately(6.0 / 7, 1e-12);
        scores["rouge_l"].Should().BeApproximately(6.0 / 7, 1e-12);
        TaskScoring.ReferenceScoresOf(" same answer ", "same answer", text)["exact"].Should().Be(1);
    }

    [Fact]
    public void Curate_GenerationReferences_SplitsAtRandomAndNamesTheJsonFields()
    {
        var (splits, report) = Curator.Curate(References(20), 0.2, 0.25, 7, task: ExperimentTask.Generation);

        (report.Train, report.Validation, report.Test).Should().Be((12, 4, 4));
        splits.Train.Concat(splits.Validation).Concat(splits.Test).Select(e => e.Line).Distinct().Should().HaveCount(20);
        report.LabelCounts.Should().BeEmpty();
        report.ReferenceFields.Should().Equal("name", "age");
        report.LongestReference.Should().Be("{\"name\":\"person 10\",\"age\":30}".Length);
        splits.Test[0].Expected.Should().StartWith("{\"name\":");
        Curator.Curate(References(20), 0.2, 0.25, 7, task: ExperimentTask.Generation).Splits.Test.Select(e => e.Line).Should().Equal(splits.Test.Select(e => e.Line));

        Curator.Curate(References(20, oneText: true), 0.2, 0.25, 7, task: ExperimentTask.Generation).Report.ReferenceFields.Should().BeNull();
        // A classification dataset may not hold a JSON object as its label.
        Curator.Curate(References(20), 0.2, 0.25, 7).Report.FormatErrors.Should().Be(20);
    }

    [Fact]
    public void ToOutcomes_GenerationPrimary_KeepsTheGradedScoreAndEveryScore_FailedCallsScoreZero()
    {
        EvaluationItemResult Row(int item, string? error, double fields) => new()
        {
            Prompt = "p@1", ModelEndpoint = "m", Item = item, Line = item + 1, Repeat = 0, LatencyS = 0.1, Output = "{}", Error = error,
            Scores = error is null ? new Dictionary<string, double> { ["exact"] = fields >= 1 ? 1 : 0, ["json_fields"] = fields, ["rouge_l"] = 0.5 } : null,
        };

        var outcomes = EvaluationResults.ToOutcomes([Row(0, null, 1), Row(1, null, 0.5), Row(2, "timeout", 0)], ["a", "b", "c"], "json_fields");

        outcomes.Select(o => (o.ItemId, o.Correct, o.Score)).Should().Equal(("a", true, 1.0), ("b", false, 0.5), ("c", false, 0.0));
        outcomes[1].Scores.Should().BeEquivalentTo(new Dictionary<string, double> { ["exact"] = 0, ["json_fields"] = 0.5, ["rouge_l"] = 0.5 });
        outcomes[1].Invalid.Should().BeFalse();
        EvaluationResults.ToOutcomes([Row(1, null, 0.5)], ["b"]).Single().Score.Should().BeNull("classification counts right and wrong");
    }

    [Fact]
    public void Scorers_ByTask_AddJsonFieldsForJsonReferencesAndTheJudgeWhenConfigured()
    {
        var json = Curator.Curate(References(10), 0.2, 0.1, 1, task: ExperimentTask.Generation).Report;
        var text = Curator.Curate(References(10, oneText: true), 0.2, 0.1, 1, task: ExperimentTask.Generation).Report;

        TaskScoring.Scorers(ExperimentTask.Generation, json, "judge-1").Should().Equal("exact", "token-f1", "rouge-l", "json-fields", "judge:judge-1");
        TaskScoring.Scorers(ExperimentTask.Generation, text, null).Should().Equal("exact", "token-f1", "rouge-l");
        TaskScoring.Scorers(ExperimentTask.Classification, json, "judge-1").Should().Equal("label", "label-likelihood");
        (TaskScoring.PrimaryMetric(ExperimentTask.Generation, json), TaskScoring.PrimaryMetric(ExperimentTask.Generation, text)).Should().Be(("json_fields", "token_f1"));
        TaskScoring.MaxTokens(ExperimentTask.Generation, json, 512).Should().Be(json.LongestReference * 5 / 4);
        TaskScoring.MaxTokens(ExperimentTask.Generation, json with { LongestReference = 4000 }, 512).Should().Be(512);
    }
}

using System.Text;
using System.Text.Json;
using AspireTune.Comparison.Workflow;
using AspireTune.Contracts.Datasets;
using AspireTune.Contracts.Evaluation;
using AspireTune.Evaluation.Data;
using AspireTune.Evaluation.Datasets;
using AspireTune.Evaluation.Runs;

namespace AspireTune.Platform.Tests;

/// <summary>The shapes that cross service boundaries: one reader per artifact, and what one service writes the other reads.</summary>
public sealed class ContractsTests
{
    [Fact]
    public void Read_BadLines_EachReportedWithItsLineNumber()
    {
        var jsonl = "\uFEFF{\"input\":\"a\",\"expected\":\"x\",\"metadata\":{\"id\":\"first\"}}\r\n"
            + "\n"
            + "{broken\n"
            + "{\"expected\":\"y\"}\n"
            + "{\"input\":\"b\",\"metadata\":[1]}\n"
            + "[1,2]\n"
            + "{\"input\":\"c\"} {\"input\":\"d\"}\n"
            + "   \n"
            + "{\"input\":\"e\",\"expected\":7}\n";

        var read = LabelledJsonl.Read(Encoding.UTF8.GetBytes(jsonl));

        read.Lines.Select(l => l.Line).Should().Equal(1, 3, 4, 5, 6, 7, 9);
        read.Examples.Select(e => (e.Line, e.Example.Input, e.Example.Expected)).Should().Equal((1, "a", "x"), (9, "e", "7"));
        read.Examples.First().Example.Metadata!["id"].GetString().Should().Be("first");
        read.Errors.Select(e => e.ToString()).Should().SatisfyRespectively(
            e => e.Should().StartWith("line 3: not valid JSON"),
            e => e.Should().Be("line 4: 'input' is missing or not a non-empty string"),
            e => e.Should().Be("line 5: 'metadata' must be an object when present"),
            e => e.Should().Be("line 6: expected a JSON object, found Array"),
            e => e.Should().Be("line 7: more than one JSON value on the line"));
    }

    [Fact]
    public void Read_RequiredStringLabel_RefusesMissingAndNonStringLabels()
    {
        var read = LabelledJsonl.Read("{\"input\":\"a\",\"expected\":\"x\"}\n{\"input\":\"b\"}\n{\"input\":\"c\",\"expected\":3}\n", ExpectedLabel.RequiredString);

        read.Examples.Select(e => e.Line).Should().Equal(1);
        read.Errors.Select(e => e.ToString()).Should().Equal("line 2: 'expected' must be a string", "line 3: 'expected' must be a string");
    }

    [Fact]
    public void Write_ThenRead_SameRows()
    {
        LabelledExample[] rows =
        [
            new() { Input = "héllo \"quoted\"\nnext", Expected = "spam", Metadata = new Dictionary<string, JsonElement> { ["id"] = JsonSerializer.SerializeToElement("x-1") } },
            new() { Input = "unlabelled" },
        ];

        var read = LabelledJsonl.Read(LabelledJsonl.Write(rows));

        read.Errors.Should().BeEmpty();
        read.Examples.Select(e => (e.Line, e.Example.Input, e.Example.Expected, Id: e.Example.Metadata?["id"].GetString())).Should()
            .Equal((1, rows[0].Input, "spam", "x-1"), (2, "unlabelled", null, null));
    }

    [Fact]
    public void DatasetReaders_EveryService_SameLineNumbersAndMessages()
    {
        const string jsonl = "{\"input\":\"a\",\"expected\":\"x\"}\n{broken\n{\"input\":\"b\",\"expected\":\"y\"}\n";

        var comparison = AspireTune.Comparison.Curation.DatasetReader.Parse(jsonl);
        var evaluation = AspireTune.Evaluation.Datasets.DatasetReader.Parse(Encoding.UTF8.GetBytes(jsonl));

        comparison.Examples.Select(e => e.Line).Should().Equal(1, 3);
        comparison.Errors.Single().ToString().Should().StartWith("line 2: not valid JSON");
        evaluation.Select(i => i.Line).Should().Equal(1, 2, 3);
        evaluation[1].Error.Should().Be(comparison.Errors.Single().ToString());
    }

    [Fact]
    public void ItemResults_WrittenByEvaluation_ReadByComparisonAsOutcomes()
    {
        var spec = new RunSpec { Prompts = ["p@1"], ModelEndpoints = ["local"], Scorers = ["label"], Repeats = 2 };
        List<DatasetItem> items = [new(0, 1, "cheap pills", "spam", null), new(1, 3, "standup at ten", "ham", null), new(2, 4, null, null, "line 4: not valid JSON (x)")];
        ItemResultEntity[] stored =
        [
            new() { Item = 0, Repeat = 0, Output = "spam", Predicted = "spam", Scores = new() { ["label"] = 1 }, LatencyMs = 250, InputTokens = 12, OutputTokens = 1, CostUsd = 0.002 },
            new() { Item = 0, Repeat = 1, Output = "ham", Predicted = "ham", Scores = new() { ["label"] = 0 }, LatencyMs = 240 },
            new() { Item = 1, Repeat = 0, Output = "Spam!", Predicted = "spam", Scores = new() { ["label"] = 0 }, LatencyMs = 500, CostUsd = 0.001 },
            new() { Item = 2, Repeat = 0, Error = "line 4: not valid JSON (x)" },
        ];

        using var artifact = new MemoryStream();
        foreach (var r in stored)
            EvaluationResultsJsonl.WriteLine(artifact, RunExecutor.ToResult(r, items[r.Item], spec));
        var outcomes = EvaluationResults.ToOutcomes(EvaluationResultsJsonl.Read(artifact.ToArray()), ["line-1", "line-3", "line-4"]);

        outcomes.Should().HaveCount(3, "repeats measure consistency, the comparison scores the first answer");
        outcomes[0].Should().Be(new AspireTune.Comparison.Analysis.ItemOutcome("line-1", true, 0.25, 0.002, "spam", null));
        outcomes[1].Should().Be(new AspireTune.Comparison.Analysis.ItemOutcome("line-3", false, 0.5, 0.001, "spam", null));
        outcomes[2].Correct.Should().BeFalse();
        outcomes[2].Error.Should().Be("line 4: not valid JSON (x)");
    }

    [Fact]
    public void ItemResult_Json_KeepsThePublishedFieldNames()
    {
        var result = new EvaluationItemResult { Prompt = "p@1", ModelEndpoint = "m", Item = 0, Line = 1, Repeat = 0, LatencyS = 0.1, Scores = new Dictionary<string, double> { ["label"] = 1 } };

        using var line = new MemoryStream();
        EvaluationResultsJsonl.WriteLine(line, result);
        using var json = JsonDocument.Parse(line.ToArray());

        // Other teams read this artifact: evolve it by adding fields, never by renaming one.
        json.RootElement.EnumerateObject().Select(p => p.Name).Should().Equal("prompt", "modelEndpoint", "item", "line", "repeat", "input", "expected", "output",
            "predicted", "scores", "latencyS", "inputTokens", "outputTokens", "costUsd", "cached", "error", "scoreErrors",
            "examplesShown", "examplesRetrieved", "inputTruncated");
    }

    [Fact]
    public void ItemResults_LineWithoutARequiredField_ErrorNamesTheLine()
    {
        var content = Encoding.UTF8.GetBytes("{\"prompt\":\"p@1\",\"modelEndpoint\":\"m\",\"item\":0,\"line\":1,\"repeat\":0,\"latencyS\":0.1}\n\n{\"prompt\":\"p@1\",\"item\":1}\n");

        var act = () => EvaluationResultsJsonl.Read(content);

        act.Should().Throw<FormatException>().WithMessage("Evaluation results line 3:*");
    }
}

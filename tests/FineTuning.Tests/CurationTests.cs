using System.Text;
using System.Text.Json;
using AspireTune.FineTuning.Curation;

namespace AspireTune.FineTuning.Tests;

public sealed class CurationTests
{
    private static JsonlParseResult Parse(params string[] lines) => JsonlDataset.Parse(Encoding.UTF8.GetBytes(string.Join("\n", lines)));

    private static string Chat(string user, string answer) =>
        JsonSerializer.Serialize(new { messages = new[] { new { role = "user", content = user }, new { role = "assistant", content = answer } } });

    [Fact]
    public void Parse_ChatAndBlankLines_ReadsExamplesWithTheirLineNumbers()
    {
        var result = Parse(Chat("hi there", "hello"), "", Chat("how are you", "fine"));

        result.IsValid.Should().BeTrue();
        result.Format.Should().Be(JsonlDataset.ChatFormat);
        result.Examples.Select(e => e.LineNumber).Should().Equal(1, 3);
        result.Examples[1].Answer.Should().Be("fine");
    }

    [Fact]
    public void Parse_PromptCompletionPairs_BecomeUserAndAssistantTurns()
    {
        var result = Parse("""{"prompt":"2+2=","completion":"4"}""", """{"prompt":"3+3=","completion":"6"}""");

        result.IsValid.Should().BeTrue();
        result.Format.Should().Be(JsonlDataset.PromptCompletionFormat);
        result.Examples[0].Messages.Select(m => m.Role).Should().Equal("user", "assistant");
    }

    [Fact]
    public void Parse_EachKindOfBadLine_ReportsItsLineAndReason()
    {
        var result = Parse(
            Chat("ok", "fine"),
            "{not json",
            """{"messages":[{"role":"robot","content":"x"},{"role":"assistant","content":"y"}]}""",
            """{"messages":[{"role":"user","content":"x"}]}""",
            """{"prompt":"only a prompt"}""",
            "[1,2]",
            """{"prompt":"p","completion":"c"}""");

        result.IsValid.Should().BeFalse();
        result.Errors.Select(e => e.Line).Should().Equal(2, 3, 4, 5, 6, 7);
        result.Errors[0].Message.Should().Contain("invalid JSON");
        result.Errors[1].Message.Should().Contain("messages[0].role is 'robot'");
        result.Errors[2].Message.Should().Contain("last message must be the assistant");
        result.Errors[3].Message.Should().Contain("\"completion\" is missing");
        result.Errors[4].Message.Should().Contain("expected a JSON object");
        result.Errors[5].Message.Should().Contain("one format per file");
        result.Summary().Should().Contain("line 2:").And.Contain("line 7:");
    }

    private static string Pair(string user, string preferred, string other) => JsonSerializer.Serialize(new
    {
        input = new { messages = new[] { new { role = "system", content = "Be brief." }, new { role = "user", content = user } } },
        preferred_output = new[] { new { role = "assistant", content = preferred } },
        non_preferred_output = new[] { new { role = "assistant", content = other } },
    });

    [Fact]
    public void Parse_PreferencePairs_KeepTheInputThePreferredAndTheOtherAnswerAndRoundTrip()
    {
        var result = Parse(Pair("2+2?", "4", "5"), "", Pair("3+3?", "6", "seven"));
        var again = JsonlDataset.Parse(JsonlDataset.Write(result.Examples));

        result.IsValid.Should().BeTrue();
        result.Format.Should().Be(JsonlDataset.PreferenceFormat);
        result.Examples.Select(e => e.LineNumber).Should().Equal(1, 3);
        result.Examples[1].Prompt.Select(m => m.Role).Should().Equal("system", "user");
        result.Examples[1].Answer.Should().Be("6");
        result.Examples[1].NonPreferred.Should().Be("seven");
        again.Format.Should().Be(JsonlDataset.PreferenceFormat);
        again.Examples.Select(e => (e.FullText, e.NonPreferred)).Should().Equal(result.Examples.Select(e => (e.FullText, e.NonPreferred)));
    }

    [Fact]
    public void Parse_EachKindOfBadPreferenceLine_ReportsItsLineAndReason()
    {
        var result = Parse(
            Pair("ok", "yes", "no"),
            """{"input":"hi","preferred_output":[],"non_preferred_output":[]}""",
            """{"input":{"messages":[{"role":"user","content":"x"},{"role":"assistant","content":"y"}]},"preferred_output":[{"role":"assistant","content":"a"}],"non_preferred_output":[{"role":"assistant","content":"b"}]}""",
            """{"input":{"messages":[{"role":"user","content":"x"}]},"preferred_output":[{"role":"assistant","content":"a"}]}""",
            """{"input":{"messages":[{"role":"user","content":"x"}]},"preferred_output":[{"role":"user","content":"a"}],"non_preferred_output":[{"role":"assistant","content":"b"}]}""",
            """{"input":{"messages":[{"role":"user","content":"x"}]},"preferred_output":[{"role":"assistant","content":"a"}],"non_preferred_output":[{"role":"assistant","content":"a"}]}""",
            """{"input":{"messages":[{"role":"user","content":"x"}]},"preferred_output":[{"role":"assistant","content":"a"}],"non_preferred_output":[{"role":"assistant","content":" "}]}""",
            """{"input":{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]},"preferred_output":[{"role":"assistant","content":"a"}],"non_preferred_output":[{"role":"assistant","content":"b"}]}""",
            Chat("a chat line", "in a preference file"),
            """{"messages":[],"input":{"messages":[]}}""",
            """{"\ud800":"\udfff"}""");

        result.IsValid.Should().BeFalse();
        result.Examples.Should().ContainSingle();
        result.Errors.Select(e => e.Line).Should().Equal(2, 3, 4, 5, 6, 7, 8, 9, 10, 11);
        result.Errors[0].Message.Should().Contain("\"input\" is missing or not an object");
        result.Errors[1].Message.Should().Contain("last input message is from 'assistant'");
        result.Errors[2].Message.Should().Contain("\"non_preferred_output\" is missing");
        result.Errors[3].Message.Should().Contain("\"preferred_output\" must hold exactly one message, from the assistant");
        result.Errors[4].Message.Should().Contain("are the same answer");
        result.Errors[5].Message.Should().Contain("non_preferred_output[0].content is empty");
        result.Errors[6].Message.Should().Contain("input.tools");
        result.Errors[7].Message.Should().Contain("one format per file");
        result.Errors[8].Message.Should().Contain("mixes the preference fields");
        result.Errors[9].Message.Should().Contain("lone surrogate");
    }

    [Fact]
    public void Parse_InvalidUtf8_NamesTheLine()
    {
        var bytes = Encoding.UTF8.GetBytes(Chat("a", "b") + "\n").Concat(new byte[] { 0x7b, 0xff, 0xfe, 0x7d, 0x0a }).ToArray();

        var result = JsonlDataset.Parse(bytes);

        result.Errors.Should().ContainSingle().Which.Should().Be(new JsonlError(2, "the line is not valid UTF-8"));
    }

    [Fact]
    public void Parse_MoreMessagesThanTheLimit_NamesTheLineAndTheLimit_ALineAtTheLimitIsRead()
    {
        static string Conversation(int messages) => JsonSerializer.Serialize(new
        {
            messages = Enumerable.Range(0, messages).Select(i => new { role = i % 2 == 0 ? "user" : "assistant", content = $"turn {i}" }),
        });

        var result = JsonlDataset.Parse(Encoding.UTF8.GetBytes(Chat("a", "b") + "\n" + Conversation(JsonlDataset.MaxMessages + 2) + "\n" + Conversation(JsonlDataset.MaxMessages) + "\n"));

        result.Errors.Should().ContainSingle().Which.Line.Should().Be(2);
        result.Errors[0].Message.Should().Contain($"has {JsonlDataset.MaxMessages + 2:N0} messages; at most {JsonlDataset.MaxMessages:N0} per example");
        result.Examples.Should().HaveCount(2);
        result.Examples[1].Messages.Should().HaveCount(JsonlDataset.MaxMessages);
    }

    [Fact]
    public void Parse_EmptyFile_IsInvalidAndSaysEmpty()
    {
        var result = JsonlDataset.Parse([]);

        result.IsValid.Should().BeFalse();
        result.Summary().Should().Contain("empty");
    }

    [Fact]
    public void Run_ExactAndNearDuplicates_AreRemovedAndReportedWithTheLineTheyRepeat()
    {
        var lines = TestData.ChatLines(12);
        lines.Add(lines[3]);                                                   // line 13: exact copy of line 4
        lines.Add(lines[0].Replace("The soup was", "THE SOUP, was"));          // line 14: line 1 but for case and punctuation
        var nearText = string.Join(' ', Enumerable.Range(1, 60).Select(i => $"w{i}"));
        lines.Add(Chat(nearText, "positive"));                                 // line 15
        lines.Add(Chat(nearText + " w61", "positive"));                        // line 16: Jaccard 59/64 = 0.92
        var parsed = JsonlDataset.Parse(TestData.Jsonl(lines));

        var result = QualityGate.Run(parsed, null, e => e.FullText.Length, 10_000, new CurationOptions { MinExamples = 1 });

        result.Report.Duplicates.ExactRemoved.Should().Be(2);
        result.Report.Duplicates.NearRemoved.Should().Be(1);
        result.Report.Duplicates.RemovedLines.Should().Contain(new RemovedLine(13, 4, 1.0));
        result.Report.Duplicates.RemovedLines.Should().Contain(new RemovedLine(14, 1, 1.0));
        result.Report.Duplicates.RemovedLines.Should().Contain(r => r.Line == 16 && r.SameAsLine == 15 && r.Jaccard >= 0.9);
        result.Kept.Should().HaveCount(13);
        result.Report.Duplicates.Method.Should().Contain("Jaccard >= 0.9");
    }

    [Fact]
    public void Run_TrainingPromptsInTheTestSet_AreRemovedAndFailTheGateAboveTheLimit()
    {
        var training = JsonlDataset.Parse(TestData.Jsonl(TestData.ChatLines(20)));
        var test = JsonlDataset.Parse(TestData.Jsonl(TestData.ChatLines(2, offset: 4)));
        var options = new CurationOptions { MinExamples = 1, MaxLeakageFraction = 0.2 };

        var small = QualityGate.Run(training, test, _ => 10, 100, options);
        var large = QualityGate.Run(training, JsonlDataset.Parse(TestData.Jsonl(TestData.ChatLines(10))), _ => 10, 100, options);

        small.Report.Passed.Should().BeTrue();
        small.Report.Leakage!.OverlappingTrainingExamples.Should().Be(2);
        small.Report.Leakage.RemovedLines.Select(l => l.Line).Should().Equal(5, 6);
        small.Kept.Should().HaveCount(18);
        large.Report.Passed.Should().BeFalse();
        large.Report.Failures.Should().ContainSingle(f => f.Contains("matches the test set"));
    }

    [Fact]
    public void Run_LabelsAndTokenLengths_AreCountedAndTruncationFailsAboveTheLimit()
    {
        var parsed = JsonlDataset.Parse(TestData.Jsonl(TestData.ChatLines(20)));

        var ok = QualityGate.Run(parsed, null, e => e.LineNumber, 15, new CurationOptions { MinExamples = 1, MaxTruncatedFraction = 0.5 });
        var tooLong = QualityGate.Run(parsed, null, e => e.LineNumber, 5, new CurationOptions { MinExamples = 1, MaxTruncatedFraction = 0.5 });

        ok.Report.Labels.IsClassification.Should().BeTrue();
        ok.Report.Labels.Counts.Should().BeEquivalentTo(new Dictionary<string, int> { ["positive"] = 10, ["negative"] = 10 });
        ok.Report.Labels.MajorityShare.Should().Be(0.5);
        ok.Report.Tokens.Max.Should().Be(20);
        ok.Report.Tokens.P50.Should().Be(10);
        ok.Report.Tokens.TruncatedLines.Should().Equal(16, 17, 18, 19, 20);
        ok.Report.Passed.Should().BeTrue();
        tooLong.Report.Passed.Should().BeFalse();
        tooLong.Report.Failures.Should().ContainSingle(f => f.Contains("max_seq_len 5"));
    }

    [Fact]
    public void Run_TooFewExamplesAfterRemoval_FailsWithTheCount()
    {
        var parsed = JsonlDataset.Parse(TestData.Jsonl(TestData.ChatLines(3)));

        var result = QualityGate.Run(parsed, null, _ => 1, 10, new CurationOptions { MinExamples = 10 });

        result.Report.Passed.Should().BeFalse();
        result.Report.Failures.Should().ContainSingle().Which.Should().Contain("Only 3 example(s) remain");
    }
}

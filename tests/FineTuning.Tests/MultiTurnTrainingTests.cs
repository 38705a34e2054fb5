using AspireTune.Engine.Tokenization;
using AspireTune.Engine.Training;
using AspireTune.FineTuning.Curation;
using AspireTune.FineTuning.Serving;
using AspireTune.FineTuning.Tests.Engine;
using static TorchSharp.torch;

namespace AspireTune.FineTuning.Tests;

/// <summary>
/// Every assistant turn of a chat example is trained, as the hosted fine-tuning trains them (weight 0 excludes one):
/// the rendered conversation becomes segments, the engine a per-token mask, and truncation keeps the last trained turn.
/// </summary>
[Collection(GlobalGeneratorCollection.Name)]
public sealed class MultiTurnTrainingTests
{
    private static readonly ByteLevelBpeTokenizer Bytes = ByteLevelBpeTokenizer.CreateByteLevel();

    private static TrainingExample Conversation(int firstWeight = 1, int lastWeight = 1, string first = "Paris", string last = "Rome") => new(1,
    [
        new ChatMessage("system", "Answer briefly."),
        new ChatMessage("user", "Capital of France?"),
        new ChatMessage("assistant", first) { Weight = firstWeight },
        new ChatMessage("user", "And of Italy?"),
        new ChatMessage("assistant", last) { Weight = lastWeight },
    ]);

    /// <summary>The trained ids of a sequence as texts, one per run of consecutive trained ids.</summary>
    private static List<string> TrainedRuns(int[] ids, bool[] trained)
    {
        var runs = new List<string>();
        for (var j = 0; j < ids.Length; j++)
            if (trained[j] && (j == 0 || !trained[j - 1]))
                runs.Add(Bytes.Decode(ids[j..].TakeWhile((_, k) => trained[j + k])));
        return runs;
    }

    private static SftSequence Encoded(SftExample example, int maxLength = 4096) => SftData.Encode([example], Bytes, maxLength, "training")[0];

    public static TheoryData<string, string[]> Templates => new()
    {
        // ChatML: the turn ends with <|im_end|> and a line break; the last also with the end-of-text token training appends.
        { "qwen2.5", ["Paris<|im_end|>\n", "Rome<|im_end|>\n<|endoftext|>"] },
        // Llama 3 ends a turn with <|eot_id|>, its eos_token: the last turn's is the end-of-text token training appends.
        { "llama3", ["Paris<|eot_id|>", "Rome<|endoftext|>"] },
        // Mistral v0.3 moves the system message into the last user turn: the first answer is found after the previous turn.
        { "mistral-v0.3", [" Paris</s>", " Rome<|endoftext|>"] },
        // The built-in template has no end-of-turn text: an earlier answer is its text; the last ends with end-of-text.
        { "built-in", ["Paris", "Rome<|endoftext|>"] },
    };

    private static ChatTemplate Template(string name) => name switch
    {
        "qwen2.5" => ChatTemplate.FromJinja(ChatTemplateTests.Qwen25, "", "<|im_end|>"),
        "llama3" => ChatTemplate.FromJinja(ChatTemplateTests.Llama3, "<|begin_of_text|>", "<|eot_id|>"),
        "mistral-v0.3" => ChatTemplate.FromJinja(File.ReadAllText(EngineFixtures.Path_(Path.Combine("chat-templates", "mistral-7b-instruct-v0.3.jinja"))), "<s>", "</s>"),
        _ => ChatTemplate.BuiltIn,
    };

    [Theory]
    [MemberData(nameof(Templates))]
    public void RenderTurns_TwoAnswerConversation_MasksExactlyTheAssistantTurnsAndTheirEndOfTurn(string name, string[] expected)
    {
        var template = Template(name);
        var example = Conversation();

        var turns = template.RenderTurns(example);
        var sequence = Encoded(turns);
        var firstExcluded = Encoded(template.RenderTurns(Conversation(firstWeight: 0)));

        TrainedRuns(sequence.Ids, sequence.Trained).Should().Equal(expected);
        var (prompt, completion) = template.Render(example);
        string.Concat(turns.Segments.Select(s => s.Text)).Should().Be(prompt + completion, "the segments are the rendering training used for the last turn alone");
        (turns.Prompt, turns.Completion).Should().Be((prompt, completion), "exact match still generates the final answer from everything before it");
        Bytes.Decode(sequence.PromptIds).Should().Be(prompt);
        TrainedRuns(firstExcluded.Ids, firstExcluded.Trained).Should().Equal(expected[^1..], "weight 0 leaves the first answer as context");
        firstExcluded.Ids.Should().Equal(sequence.Ids, "weight changes the mask, not the text");
    }

    [Fact]
    public void RenderTurns_CallThenAnswer_TrainsTheCallInTheTemplatesOwnFormAndTheAnswer()
    {
        var tools = new List<System.Text.Json.Nodes.JsonObject> { ToolCallFormat.ProbeTool() };
        var call = ToolCallFormat.ProbeTurn();
        var example = new TrainingExample(1, [new ChatMessage("user", "probe?"), call, new ChatMessage("tool", "7", ToolCallId: "probecall"), new ChatMessage("assistant", "seven")]) { Tools = tools };

        var qwen = Encoded(Template("qwen2.5").RenderTurns(example));
        var builtIn = Encoded(ChatTemplate.BuiltIn.RenderTurns(example));

        TrainedRuns(qwen.Ids, qwen.Trained).Should().Equal(
            "<tool_call>\n{\"name\": \"probe_function\", \"arguments\": {\"probe_argument\": 1}}\n</tool_call><|im_end|>\n", "seven<|im_end|>\n<|endoftext|>");
        TrainedRuns(builtIn.Ids, builtIn.Trained).Should().Equal(call.Text, "seven<|endoftext|>");
    }

    [Fact]
    public void RenderTurns_TemplateHidingEarlierAnswers_RefusesToTrainThemUnlessWeightZero()
    {
        // Earlier answers are rendered as a placeholder once a later turn follows: the turn cannot be found to train.
        var template = ChatTemplate.FromJinja("{% for m in messages %}{% if m.role == 'assistant' and not loop.last %}#a ...\n{% else %}{{ '#' + m.role[0] + ' ' + m.content }}\n{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '#a ' }}{% endif %}");

        var act = () => template.RenderTurns(Conversation());
        var excluded = template.RenderTurns(Conversation(firstWeight: 0));

        act.Should().Throw<AspireTune.FineTuning.Serving.Templates.TemplateException>().WithMessage("*messages[2]*weight*0*");
        excluded.Segments.Where(s => s.Trained).Select(s => s.Text).Should().Equal("Rome\n");
    }

    [Fact]
    public void CollatePacked_MultiTurnSequences_KeepsEachExamplesMaskAtItsOffset()
    {
        var template = Template("qwen2.5");
        List<SftSequence> seqs = [Encoded(template.RenderTurns(Conversation())), Encoded(template.RenderTurns(Conversation(firstWeight: 0, first: "Lyon")))];

        var (_, packed, _, _, _, count) = SftData.CollatePacked([seqs], 0, CPU);

        count.Should().Be(seqs.Sum(s => s.TargetCount));
        var at = 0;
        foreach (var s in seqs)
        {
            var (_, alone, _, n) = SftData.Collate([s], 0, CPU);
            packed[0, TensorIndex.Slice(at, at + s.Ids.Length)].data<long>().ToArray().Should().Equal(alone[0].data<long>().ToArray());
            n.Should().Be(s.TargetCount);
            at += s.Ids.Length;
        }
    }

    [Fact]
    public void Encode_ConversationOverMaxLength_DropsWholeEarlierTurnsAndKeepsTheLastTrainedTurn()
    {
        var template = Template("qwen2.5");
        var whole = Encoded(template.RenderTurns(Conversation()));
        var lastTurn = "<|im_start|>user\nAnd of Italy?<|im_end|>\n<|im_start|>assistant\nRome<|im_end|>\n";

        var short1 = Encoded(template.RenderTurns(Conversation()), maxLength: whole.Ids.Length - 1);
        var tight = Encoded(template.RenderTurns(Conversation()), maxLength: lastTurn.Length + 1 - 3);
        var lastUntrained = Encoded(template.RenderTurns(Conversation(lastWeight: 0)), maxLength: whole.Ids.Length - 1);

        // One id too many: the cut goes to the next turn boundary, the start of the second user turn.
        Bytes.Decode(short1.Ids).Should().Be(lastTurn + "<|endoftext|>");
        TrainedRuns(short1.Ids, short1.Trained).Should().Equal("Rome<|im_end|>\n<|endoftext|>");
        // No boundary fits: the context before the last turn loses its beginning, the turn survives whole.
        tight.Ids.Length.Should().Be(lastTurn.Length - 2);
        TrainedRuns(tight.Ids, tight.Trained).Should().Equal("Rome<|im_end|>\n<|endoftext|>");
        // The last turn untrained: nothing after the first answer is learned, so that is what goes.
        TrainedRuns(lastUntrained.Ids, lastUntrained.Trained).Should().Equal("Paris<|im_end|>\n");
        Bytes.Decode(lastUntrained.Ids).Should().EndWith("Capital of France?<|im_end|>\n<|im_start|>assistant\nParis<|im_end|>\n");
    }

    [Fact]
    public void Layout_LastTrainedTurnLongerThanMaxLength_KeepsItsBeginningAndOneIdBefore()
    {
        // Context 10, a trained turn 5, context 3, the last trained turn 30 (+ end-of-text).
        var (from, to, trained) = SftData.Layout([(10, false), (5, true), (3, false), (30, true)], bos: false, maxLength: 16);

        (from, to).Should().Be((17, 33));
        trained.Should().Equal([false, .. Enumerable.Repeat(true, 15)]);
    }

    /// <summary>Conversations whose first answer is a fact (a city of a country) and whose last answer is always the same.</summary>
    private static List<TrainingExample> Facts(int firstWeight)
    {
        string[] countries = ["Peru", "Chad", "Laos", "Iran", "Oman", "Fiji", "Mali", "Cuba"];
        string[] cities = ["Lima", "Ndjamena", "Vientiane", "Tehran", "Muscat", "Suva", "Bamako", "Havana"];
        return [.. countries.Select((c, i) => new TrainingExample(i + 1,
        [
            new ChatMessage("user", $"{c}?"),
            new ChatMessage("assistant", cities[i]) { Weight = firstWeight },
            new ChatMessage("user", "ok?"),
            new ChatMessage("assistant", "ok"),
        ]))];
    }

    /// <summary>The mean loss on the first answers' tokens of <see cref="Facts"/> after training on them with that weight.</summary>
    private static (double Before, double After) FirstAnswerLoss(int firstWeight)
    {
        using var model = EngineFixtures.TinyGpt2(seed: 7);
        var options = new SftOptions
        {
            Epochs = 120, BatchSize = 8, LearningRate = 3e-3, WarmupSteps = 2, EvalEverySteps = 1000, EarlyStoppingPatience = 0,
            CheckpointEverySteps = 0, ExactMatchExamples = 0, Dropout = 0.0, Seed = 3,
        };
        var trainer = new SftTrainer(model, options);
        var train = Facts(firstWeight).Select(ChatTemplate.BuiltIn.RenderTurns).ToList();
        // The probe: the same conversations with only the first answer trained, so the loss is over its tokens alone.
        var probe = Facts(1).Select(e => ChatTemplate.BuiltIn.RenderTurns(e with { Messages = [.. e.Messages.SkipLast(1), e.Messages[^1] with { Weight = 0 }] })).ToList();
        var before = trainer.Evaluate(probe).ValidationLoss;
        trainer.Train(train, probe, EngineFixtures.TempDirectory(), cancellationToken: TestContext.Current.CancellationToken);
        return (before, trainer.Evaluate(probe).ValidationLoss);
    }

    [Fact]
    public void Train_FactOnlyInTheFirstAnswer_IsLearnedOnlyWhenThatTurnIsTrained()
    {
        var all = FirstAnswerLoss(firstWeight: 1);
        var lastOnly = FirstAnswerLoss(firstWeight: 0);

        all.After.Should().BeLessThan(all.Before * 0.2, "every assistant turn is trained: the first answers are learned");
        // Measured: 5.57 -> 0.05 nats with every turn trained, 5.57 -> 8.3 with the first answers at weight 0.
        lastOnly.After.Should().BeGreaterThan(lastOnly.Before * 0.8, "with weight 0 the first answers are context, never targets");
        lastOnly.After.Should().BeGreaterThan(all.After * 4);
    }
}

using System.Collections.Concurrent;
using System.Text;
using System.Text.Json.Nodes;
using AspireTune.Engine.Tokenization;
using AspireTune.Engine.Training;
using AspireTune.FineTuning.Curation;
using AspireTune.FineTuning.Serving.Templates;

namespace AspireTune.FineTuning.Serving;

/// <summary>
/// How a conversation becomes text for a model, identical in training and serving (a mismatch between the two
/// silently ruins a fine-tuned model). A checkpoint whose <c>tokenizer_config.json</c> has a <c>chat_template</c>
/// is rendered with it (a Jinja subset, <see cref="JinjaTemplate"/>, with <c>messages</c>, <c>tools</c>,
/// <c>add_generation_prompt</c>, <c>bos_token</c> and <c>eos_token</c>, as transformers' apply_chat_template
/// passes them); every other model gets the built-in template: role markers on their own lines, the answer after
/// the last marker, ended by the tokenizer's end-of-text token.
/// </summary>
public sealed class ChatTemplate
{
    private static readonly ConcurrentDictionary<string, (DateTime Written, ChatTemplate Template)> Cache = new();

    private readonly JinjaTemplate? _jinja;
    private readonly string _bos;
    private readonly string _eos;
    private readonly bool _tokenizerAddsBos;

    private ChatTemplate(JinjaTemplate? jinja, string bos, string eos, bool tokenizerAddsBos)
    {
        _jinja = jinja;
        _bos = bos;
        _eos = eos;
        _tokenizerAddsBos = tokenizerAddsBos;
    }

    /// <summary>The built-in template (models without a chat_template, the built-in model among them).</summary>
    public static ChatTemplate BuiltIn { get; } = new(null, "", "", false);

    /// <summary>True when the checkpoint's own chat_template renders conversations.</summary>
    public bool IsCheckpointTemplate => _jinja is not null;

    private ToolCallFormat? _callFormat;

    /// <summary>
    /// How this template writes a function call, read off the template itself: the assistant turn of a probe call is
    /// rendered and the text before its JSON object and the keys of its name and arguments are taken from it (Qwen2.5:
    /// <c>&lt;tool_call&gt;\n</c>, name, arguments; Llama 3.1: no prefix, name, parameters; Mistral v0.3:
    /// <c>[TOOL_CALLS] [</c>). The built-in form where the template writes calls another way or not at all.
    /// </summary>
    public ToolCallFormat CallFormat => _callFormat ??= _jinja is null ? ToolCallFormat.BuiltIn : ToolCallFormat.Read(ProbeCall);

    /// <summary>The completion a probe call renders to under this template, or null when the template refuses it.</summary>
    private string? ProbeCall()
    {
        var tools = new List<JsonObject> { ToolCallFormat.ProbeTool() };
        try
        {
            return Split([new ChatMessage("user", "?")], ToolCallFormat.ProbeTurn(), tools).Completion;
        }
        catch (TemplateException)
        {
            return null;
        }
    }

    /// <summary>
    /// A template from its Jinja text and the tokenizer's special tokens (tests, and <see cref="For"/>).
    /// <paramref name="tokenizerAddsBos"/>: the tokenizer prepends <paramref name="bosToken"/> when it encodes, so a
    /// rendered text that starts with it drops that copy (else the text keeps it, as transformers' rendering does).
    /// </summary>
    public static ChatTemplate FromJinja(string source, string bosToken = "", string eosToken = "", bool tokenizerAddsBos = true) =>
        new(JinjaTemplate.Parse(source), bosToken, eosToken, tokenizerAddsBos);

    /// <summary>
    /// The template of the model in <paramref name="directory"/>: its tokenizer_config.json <c>chat_template</c> (a
    /// string, or the entry named "default" of a list), else the built-in one. Cached until the file changes; a
    /// template this subset cannot parse is a <see cref="TemplateException"/> naming the file.
    /// </summary>
    public static ChatTemplate For(string? directory)
    {
        var path = directory is null ? null : Path.Combine(directory, "tokenizer_config.json");
        if (path is null || !File.Exists(path))
            return BuiltIn;
        var written = File.GetLastWriteTimeUtc(path);
        if (Cache.TryGetValue(path, out var cached) && cached.Written == written)
            return cached.Template;
        var config = JsonNode.Parse(File.ReadAllText(path)) as JsonObject;
        var source = config?["chat_template"] switch
        {
            JsonValue v when v.TryGetValue<string>(out var s) => s,
            JsonArray list => list.OfType<JsonObject>().FirstOrDefault(t => t["name"]?.ToString() == "default")?["template"]?.ToString(),
            _ => null,
        };
        ChatTemplate template;
        try
        {
            template = source is null ? BuiltIn
                : FromJinja(source, TokenText(config!["bos_token"]), TokenText(config["eos_token"]), TokenizerFiles.PrependsBos(directory!));
        }
        catch (TemplateException e)
        {
            throw new TemplateException($"{path}: chat_template: {e.Message}");
        }
        Cache[path] = (written, template);
        return template;
    }

    private static string TokenText(JsonNode? token) => token switch
    {
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonObject o => o["content"]?.ToString() ?? "",
        _ => "",
    };

    /// <summary>
    /// The text the model continues: the callable tools (built-in: one JSON array under a <c>&lt;|tools|&gt;</c>
    /// marker; a checkpoint template: its <c>tools</c> variable), every turn, then the assistant's opening.
    /// </summary>
    public string RenderPrompt(IEnumerable<ChatMessage> messages, IReadOnlyList<JsonObject>? tools = null)
    {
        if (_jinja is not null)
            return RenderJinja(messages, tools, addGenerationPrompt: true);
        var builder = new StringBuilder();
        if (tools is { Count: > 0 })
            builder.Append("<|tools|>\n").Append(new JsonArray(tools.Select(t => (JsonNode)t.DeepClone()).ToArray()).ToJsonString()).Append('\n');
        foreach (var message in messages)
            builder.Append("<|").Append(message.Role).Append("|>\n").Append(message.Text).Append('\n');
        builder.Append("<|assistant|>\n");
        return builder.ToString();
    }

    /// <summary>
    /// A training example's final assistant turn as (prompt, completion): what exact match generates from and compares
    /// with (training itself takes <see cref="RenderTurns"/>, whose last segment this completion is). With a checkpoint
    /// template the completion is what the whole conversation renders beyond the prompt (the answer and the template's
    /// end-of-turn text), less a final end-of-text token, which training appends itself.
    /// </summary>
    public (string Prompt, string Completion) Render(TrainingExample example) => AtLine(example, () => Split(example.Prompt, example.AnswerTurn, example.Tools));

    /// <summary>A preference pair as the DPO trainer takes it: the rendered input, the preferred and the other answer.</summary>
    public DpoExample RenderPair(TrainingExample example)
    {
        var other = example.NonPreferred ?? throw new ArgumentException($"line {example.LineNumber}: not a preference pair");
        return AtLine(example, () =>
        {
            var (prompt, chosen) = Split(example.Prompt, example.AnswerTurn, null);
            return new DpoExample(prompt, chosen, Split(example.Prompt, new ChatMessage("assistant", other), null).Completion);
        });
    }

    /// <summary>A template error (a <c>raise_exception</c> among them) while rendering a training example, naming its line.</summary>
    private static T AtLine<T>(TrainingExample example, Func<T> render)
    {
        try
        {
            return render();
        }
        catch (TemplateException e)
        {
            throw new TemplateException($"line {example.LineNumber}: {e.Message}");
        }
    }

    /// <summary>
    /// A chat training example as the engine trains it: the rendering of the whole conversation (the prompt and
    /// completion of <see cref="Render"/>) cut into segments, every assistant turn that <see cref="ChatMessage.IsTrained"/>
    /// a trained one. An earlier turn's segment is what rendering it as the answer to the turns before it adds (its
    /// content and the template's end-of-turn text, an end-of-text token included where the template ends a turn with
    /// it; with the built-in template its text alone, the separator after it being context); the final turn is the
    /// completion, as <see cref="Render"/> splits it, which training ends with the end-of-text token serving stops at.
    /// </summary>
    public SftExample RenderTurns(TrainingExample example) => AtLine(example, () => Turns(example));

    private SftExample Turns(TrainingExample example)
    {
        var (prompt, completion) = Split(example.Prompt, example.AnswerTurn, example.Tools);
        var context = example.Prompt;
        var segments = new List<SftSegment>();
        var cursor = 0;
        for (var i = 0; i < context.Count; i++)
        {
            if (!context[i].IsTrained)
                continue;
            var (before, turn) = Split([.. context.Take(i)], context[i], example.Tools, keepEos: true);
            if (turn.Length == 0)
                continue; // an empty turn of the built-in template: nothing to learn
            // Where the conversation's rendering starts with the turn's own prompt the turn sits right after it; a
            // template that moves text between turns (Mistral v0.3 puts the system message and tools in the last user
            // turn) has it found after the previous turn instead.
            int Find(string text) =>
                before.Length >= cursor && prompt.StartsWith(before, StringComparison.Ordinal) && string.CompareOrdinal(prompt, before.Length, text, 0, text.Length) == 0
                    ? before.Length
                    : prompt.IndexOf(text, cursor, StringComparison.Ordinal);
            var at = Find(turn);
            // A template that writes eos_token once after the whole conversation, not after each turn (Phi-3), has the
            // earlier turn without it.
            if (at < 0 && _eos.Length > 0 && turn.EndsWith(_eos, StringComparison.Ordinal) && turn.Length > _eos.Length)
                at = Find(turn = turn[..^_eos.Length]);
            if (at < 0)
                throw new TemplateException($"the chat template renders messages[{i}] (an assistant turn) differently inside the conversation than as the answer to the turns before it, so that turn cannot be trained; give it \"weight\": 0");
            if (at > cursor)
                segments.Add(new SftSegment(prompt[cursor..at], false));
            segments.Add(new SftSegment(turn, true));
            cursor = at + turn.Length;
        }
        segments.Add(new SftSegment(prompt[cursor..], false));
        segments.Add(new SftSegment(completion, example.AnswerTurn.IsTrained));
        return SftExample.FromSegments(segments);
    }

    /// <summary>
    /// The prompt for <paramref name="answer"/> and what the conversation with it adds; without
    /// <paramref name="keepEos"/> a final <c>eos_token</c> is cut off the answer (training appends its own token).
    /// </summary>
    private (string Prompt, string Completion) Split(IReadOnlyList<ChatMessage> prompt, ChatMessage answer, IReadOnlyList<JsonObject>? tools, bool keepEos = false)
    {
        var rendered = RenderPrompt(prompt, tools);
        if (_jinja is null)
            return (rendered, answer.Text);
        var whole = RenderJinja([.. prompt, answer], tools, addGenerationPrompt: false);
        if (!whole.StartsWith(rendered, StringComparison.Ordinal))
            throw new TemplateException("the chat template renders the conversation with its answer differently from the prompt alone, so the answer cannot be told apart from the prompt");
        var completion = whole[rendered.Length..];
        if (!keepEos && _eos.Length > 0 && completion.EndsWith(_eos, StringComparison.Ordinal))
            completion = completion[..^_eos.Length];
        return (rendered, completion);
    }

    private string RenderJinja(IEnumerable<ChatMessage> messages, IReadOnlyList<JsonObject>? tools, bool addGenerationPrompt)
    {
        var variables = new Dictionary<string, object?>
        {
            ["messages"] = messages.Select(m => (object?)TemplateMessage(m)).ToList(),
            ["add_generation_prompt"] = addGenerationPrompt,
            ["bos_token"] = _bos,
            ["eos_token"] = _eos,
        };
        if (tools is { Count: > 0 })
            variables["tools"] = tools.Select(t => JinjaValues.FromJson(t)).ToList();
        var text = _jinja!.Render(variables);
        // A tokenizer that prepends its own beginning-of-text token would make two with the template's copy.
        return _tokenizerAddsBos && _bos.Length > 0 && text.StartsWith(_bos, StringComparison.Ordinal) ? text[_bos.Length..] : text;
    }

    /// <summary>
    /// A turn as chat templates read it (the shape transformers and vLLM pass): <c>tool_calls</c> as
    /// <c>{id, type, function: {name, arguments}}</c> with the arguments as an object, and a tool turn's <c>tool_call_id</c>.
    /// </summary>
    private static Dictionary<string, object?> TemplateMessage(ChatMessage m)
    {
        var message = new Dictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content };
        if (m.ToolCalls is { Count: > 0 } calls)
            message["tool_calls"] = calls.Select(c => (object?)new Dictionary<string, object?>
            {
                ["id"] = c.Id,
                ["type"] = "function",
                ["function"] = new Dictionary<string, object?> { ["name"] = c.Name, ["arguments"] = JinjaValues.FromJson(JsonNode.Parse(c.Arguments)) },
            }).ToList();
        if (m.ToolCallId is { } id)
            message["tool_call_id"] = id;
        return message;
    }
}

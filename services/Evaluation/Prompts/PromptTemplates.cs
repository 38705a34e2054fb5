using System.Text;
using System.Text.RegularExpressions;
using AspireTune.Evaluation.Data;
using Microsoft.SemanticKernel;

namespace AspireTune.Evaluation.Prompts;

/// <summary>A prompt version ready to render: its user template and optional system template.</summary>
public sealed record CompiledPrompt(string Ref, IPromptTemplate User, IPromptTemplate? System, bool UsesRetrieval);

/// <summary>A few-shot example filled in from retrieval.</summary>
public sealed record PromptExample(string Input, string? Expected);

/// <summary>
/// Semantic Kernel template syntax (<c>{{$input}}</c>) with three variables: <c>input</c> (the item),
/// <c>examples</c> (retrieved examples, rendered as "Input: ...\nOutput: ..." blocks) and <c>context</c>
/// (retrieved passages, separated by blank lines). Function calls are not available.
/// </summary>
public static partial class PromptTemplates
{
    public static readonly IReadOnlyList<string> Variables = ["input", "examples", "context"];

    private static readonly KernelPromptTemplateFactory Factory = new() { AllowDangerouslySetContent = true };

    // One empty kernel renders every template: templates use variables only, never functions.
    private static readonly Kernel Kernel = new();

    [GeneratedRegex(@"\{\{(.*?)\}\}", RegexOptions.Singleline)]
    private static partial Regex Blocks();

    /// <summary>Problems with a template (unknown variables, function calls, syntax); empty when it is usable.</summary>
    public static List<string> Validate(string template, string field)
    {
        var problems = new List<string>();
        // Semantic Kernel renders an unclosed "{{" as literal text: "Classify {{$input" would be sent as written.
        var outside = Blocks().Replace(template, m => new string(' ', m.Length));
        if (outside.IndexOf("{{", StringComparison.Ordinal) is var open and >= 0)
            problems.Add($"{field}: '{{{{' at offset {open} is never closed with '}}}}'.");
        foreach (Match block in Blocks().Matches(template))
        {
            var content = block.Groups[1].Value.Trim();
            if (content.StartsWith('$'))
            {
                var name = content[1..].Trim();
                if (!Variables.Contains(name))
                    problems.Add($"{field}: unknown variable '${name}' at offset {block.Index}; the variables are {string.Join(", ", Variables.Select(v => "$" + v))}.");
            }
            else if (!(content.StartsWith('"') || content.StartsWith('\'')))
                problems.Add($"{field}: '{{{{{content}}}}}' at offset {block.Index} calls a function; evaluation templates may use only variables and quoted text.");
        }
        if (problems.Count == 0)
        {
            try
            {
                Factory.Create(Config(template));
            }
            catch (KernelException e)
            {
                problems.Add($"{field}: {e.Message}");
            }
        }
        return problems;
    }

    public static CompiledPrompt Compile(PromptVersionEntity version)
    {
        var user = Factory.Create(Config(version.Template));
        var system = string.IsNullOrEmpty(version.System) ? null : Factory.Create(Config(version.System));
        var usesRetrieval = UsesRetrieval(version.Template) || (version.System is not null && UsesRetrieval(version.System));
        return new CompiledPrompt($"{version.Name}@{version.Version}", user, system, usesRetrieval);
    }

    public static bool UsesRetrieval(string template) =>
        Blocks().Matches(template).Any(m => m.Groups[1].Value.Trim() is "$examples" or "$context");

    public static async Task<(string? System, string User)> RenderAsync(CompiledPrompt prompt, string input, IReadOnlyList<PromptExample>? examples, IReadOnlyList<string>? context, CancellationToken ct)
    {
        var arguments = new KernelArguments
        {
            ["input"] = input,
            ["examples"] = FormatExamples(examples),
            ["context"] = context is null ? "" : string.Join("\n\n", context),
        };
        var user = await prompt.User.RenderAsync(Kernel, arguments, ct);
        var system = prompt.System is null ? null : await prompt.System.RenderAsync(Kernel, arguments, ct);
        return (system, user);
    }

    private static string FormatExamples(IReadOnlyList<PromptExample>? examples)
    {
        if (examples is null || examples.Count == 0)
            return "";
        var text = new StringBuilder();
        foreach (var example in examples)
        {
            if (text.Length > 0)
                text.Append("\n\n");
            text.Append("Input: ").Append(example.Input);
            if (example.Expected is not null)
                text.Append("\nOutput: ").Append(example.Expected);
        }
        return text.ToString();
    }

    // The rendered text goes into a chat message as-is, never parsed as a chat prompt, so HTML-encoding the
    // variables (SK's default protection for <message> parsing) would only corrupt inputs such as "a < b".
    private static PromptTemplateConfig Config(string template) => new(template) { AllowDangerouslySetContent = true };
}

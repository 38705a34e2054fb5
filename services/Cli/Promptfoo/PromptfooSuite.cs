using System.Text.Json;
using AspireTune.Cli.Infrastructure;

namespace AspireTune.Cli.Promptfoo;

/// <summary>Where something was written: a file and a 1-based line.</summary>
public sealed record SourceLocation(string File, int Line)
{
    public override string ToString() => $"{File}:{Line}";
}

/// <summary>A part of a promptfoo configuration that cannot be mapped; the command refuses it (exit 2).</summary>
public sealed class PromptfooConfigException(SourceLocation at, string message)
    : Exception($"{at}: {message}")
{
    public SourceLocation At { get; } = at;

    public CliException ToCli() => new(Message, ExitCodes.Usage);
}

/// <summary>One prompt: its label, the user text (promptfoo's Nunjucks <c>{{var}}</c> syntax) and an optional system text.</summary>
public sealed record PromptSpec(string Label, string User, string? System, SourceLocation At);

/// <summary>
/// One provider mapped onto an Evaluation model endpoint: <c>openai:chat:MODEL</c> / <c>openai:MODEL</c> at
/// <c>apiBaseUrl</c> (any OpenAI-compatible URL), or <c>aspiretune:MODEL</c> (a model AspireTune serves).
/// </summary>
public sealed record ProviderSpec(string Id, string Label, string Model, string? BaseUrl, string? ApiKeyVariable, double? Temperature, int? MaxTokens,
    double InputPricePerMillion, double OutputPricePerMillion, bool AspireTune, SourceLocation At);

/// <summary>One assertion as written (its value not yet rendered with the test's variables).</summary>
public sealed record AssertionSpec(string Type, JsonElement? Value, double? Threshold, SourceLocation At);

/// <summary>One test case after <c>defaultTest</c> was merged in and array variables expanded.</summary>
public sealed record TestSpec(int Index, string? Description, IReadOnlyDictionary<string, string> Vars, IReadOnlyList<AssertionSpec> Assert, SourceLocation At);

/// <summary>Grading providers: the judge of <c>llm-rubric</c> and the embeddings of <c>similar</c>.</summary>
public sealed record GradingSpec(ProviderSpec? Judge, ProviderSpec? Embedding);

/// <summary>A promptfoo configuration as far as AspireTune maps it.</summary>
public sealed record PromptfooSuite(string Path, string? Description, IReadOnlyList<PromptSpec> Prompts, IReadOnlyList<ProviderSpec> Providers,
    IReadOnlyList<TestSpec> Tests, int Repeat, GradingSpec Grading, string? OutputPath, int MaxConcurrency = 4);

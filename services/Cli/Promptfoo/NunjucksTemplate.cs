using System.Text.RegularExpressions;

namespace AspireTune.Cli.Promptfoo;

/// <summary>
/// The part of promptfoo's Nunjucks templates that configurations commonly use: <c>{{ name }}</c> (a test
/// variable) and <c>{{ env.NAME }}</c> (an environment variable). Filters, tags (<c>{% %}</c>) and expressions are
/// refused by name, so a template never renders differently from promptfoo without saying so.
/// </summary>
public static partial class NunjucksTemplate
{
    [GeneratedRegex(@"\{\{(.*?)\}\}|\{%(.*?)%\}|\{#(.*?)#\}", RegexOptions.Singleline)]
    private static partial Regex Blocks();

    [GeneratedRegex(@"^\s*(env\.)?([A-Za-z_][A-Za-z0-9_]*)\s*$")]
    private static partial Regex Variable();

    /// <summary>The problem with a template, or null when this subset renders it.</summary>
    public static string? Check(string template)
    {
        foreach (Match block in Blocks().Matches(template))
        {
            if (block.Groups[2].Success)
                return $"the Nunjucks tag '{{%{block.Groups[2].Value}%}}' is not supported (only {{{{ var }}}} and {{{{ env.NAME }}}})";
            if (block.Groups[1].Success && !Variable().IsMatch(block.Groups[1].Value))
                return $"'{{{{{block.Groups[1].Value}}}}}' is not supported (only {{{{ var }}}} and {{{{ env.NAME }}}}: no filters, fields or expressions)";
        }
        return null;
    }

    /// <summary>The names of the test variables the template uses.</summary>
    public static IEnumerable<string> Variables(string template) =>
        Blocks().Matches(template).Select(m => Variable().Match(m.Groups[1].Value)).Where(m => m.Success && !m.Groups[1].Success).Select(m => m.Groups[2].Value);

    /// <summary>Renders with the variables; an unknown variable renders empty, as in Nunjucks. Comments vanish.</summary>
    public static string Render(string template, IReadOnlyDictionary<string, string> vars) =>
        Blocks().Replace(template, m =>
        {
            if (m.Groups[3].Success)
                return "";
            var v = Variable().Match(m.Groups[1].Value);
            if (!v.Success)
                return m.Value;
            return v.Groups[1].Success ? Environment.GetEnvironmentVariable(v.Groups[2].Value) ?? "" : vars.GetValueOrDefault(v.Groups[2].Value) ?? "";
        });
}

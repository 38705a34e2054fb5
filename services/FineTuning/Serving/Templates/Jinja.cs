using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;

namespace AspireTune.FineTuning.Serving.Templates;

/// <summary>A template that cannot be parsed or rendered (or called <c>raise_exception</c>); the message says where and why.</summary>
public sealed class TemplateException(string message) : Exception(message);

/// <summary>
/// The part of Jinja that Hugging Face chat templates use, written here because no Jinja engine is served: text,
/// <c>{{ }}</c>, <c>{% if/elif/else %}</c>, <c>{% for x in xs [if c] %}</c> with <c>loop.*</c>, <c>{% set %}</c>
/// (also <c>ns.attr</c> of a <c>namespace()</c>), comments, whitespace control (<c>{%-</c>, <c>-%}</c>) and, as
/// transformers renders them, <c>trim_blocks</c> and <c>lstrip_blocks</c>. Expressions: literals (also lists and
/// dicts), attribute and item access, slices, calls, arithmetic, <c>~</c>, comparisons, <c>in</c>, <c>and/or/not</c>,
/// inline <c>if/else</c>, tests (<c>is defined</c>, <c>none</c>, <c>string</c>, ...), filters (<c>trim</c>,
/// <c>tojson</c>, <c>length</c>, ...) and the string and dict methods templates call.
/// </summary>
public sealed class JinjaTemplate
{
    private readonly List<Node> _body;

    private JinjaTemplate(List<Node> body) => _body = body;

    public static JinjaTemplate Parse(string source)
    {
        var tokens = JinjaLexer.Split(source);
        var parser = new JinjaParser(tokens);
        try
        {
            return new JinjaTemplate(parser.ParseBody());
        }
        catch (InsufficientExecutionStackException)
        {
            throw TooDeep();
        }
    }

    private static TemplateException TooDeep() => new("the template nests its blocks or expressions too deeply");

    /// <summary>Renders with the given variables (strings, numbers, booleans, null, lists, string-keyed dictionaries).</summary>
    public string Render(IReadOnlyDictionary<string, object?> variables)
    {
        var output = new StringBuilder();
        var scope = new Scope(null);
        foreach (var (k, v) in variables) scope.Set(k, v);
        scope.Set("raise_exception", new Callable(args => throw new TemplateException("the chat template refused the conversation: " + JinjaValues.Str(args.FirstOrDefault()))));
        scope.Set("namespace", new Callable((_, kwargs) => new Dictionary<string, object?>(kwargs)));
        try
        {
            foreach (var node in _body) node.Render(scope, output);
        }
        catch (InsufficientExecutionStackException)
        {
            throw TooDeep(); // a long chain of operators parses in a loop but evaluates as deep as it is long
        }
        return output.ToString();
    }

    internal sealed class Scope(Scope? parent)
    {
        private readonly Dictionary<string, object?> _values = [];
        private readonly long[] _iterations = parent?._iterations ?? [0]; // one count per rendering, shared by every scope

        /// <summary>One more loop iteration of this rendering; past <see cref="JinjaLimits.MaxIterations"/> the template is refused.</summary>
        public void CountIteration()
        {
            if (++_iterations[0] > JinjaLimits.MaxIterations)
                throw new TemplateException($"the template loops more than {JinjaLimits.Count(JinjaLimits.MaxIterations)} times in one rendering");
        }

        public object? Get(string name) =>
            _values.TryGetValue(name, out var v) ? v : parent is not null ? parent.Get(name) : Undefined.Value;

        public void Set(string name, object? value) => _values[name] = value;

        /// <summary>A <c>set</c> inside a loop body assigns the loop's scope, which Jinja discards after the iteration.</summary>
        public Scope Child() => new(this);
    }
}

/// <summary>
/// Bounds on what one rendering may do, so that a hostile template (one that doubles a string per turn, or nests loops over the
/// messages three deep) is refused instead of taking the service's memory or time. Nesting is bounded
/// by the stack itself (<see cref="RuntimeHelpers.EnsureSufficientExecutionStack"/>).
/// </summary>
internal static class JinjaLimits
{
    /// <summary>Characters of output and of any string built on the way (16 Mi; the largest training line renders to far less).</summary>
    public const int MaxChars = 16 << 20;

    /// <summary>Loop iterations per rendering (4 Mi: a loop over the messages inside one over the messages of the largest line, 1,024 of them, four times).</summary>
    public const long MaxIterations = 4L << 20;

    /// <summary>A limit as the error messages write it (16,777,216), whatever the culture.</summary>
    public static string Count(long limit) => limit.ToString("N0", CultureInfo.InvariantCulture);

    /// <summary>Refuses a string of <paramref name="length"/> characters before it is built, when that is more than <see cref="MaxChars"/>.</summary>
    public static void CheckLength(long length)
    {
        if (length > MaxChars) throw new TemplateException($"the template builds a string or list of more than {Count(MaxChars)} characters or items");
    }
}

/// <summary>A missing variable, attribute or key: renders as nothing, is false, and fails <c>is defined</c>.</summary>
internal sealed class Undefined
{
    public static readonly Undefined Value = new();
}

/// <summary>A function a template may call, with positional and keyword arguments.</summary>
internal sealed class Callable(Func<List<object?>, Dictionary<string, object?>, object?> body)
{
    public Callable(Func<List<object?>, object?> positional) : this((args, _) => positional(args)) { }

    public object? Invoke(List<object?> args, Dictionary<string, object?> kwargs) => body(args, kwargs);
}

internal abstract record Node
{
    public void Render(JinjaTemplate.Scope scope, StringBuilder output)
    {
        RuntimeHelpers.EnsureSufficientExecutionStack();
        Write(scope, output);
        if (output.Length > JinjaLimits.MaxChars)
            throw new TemplateException($"the template renders more than {JinjaLimits.Count(JinjaLimits.MaxChars)} characters");
    }

    protected abstract void Write(JinjaTemplate.Scope scope, StringBuilder output);
}

internal sealed record TextNode(string Text) : Node
{
    protected override void Write(JinjaTemplate.Scope scope, StringBuilder output) => output.Append(Text);
}

internal sealed record OutputNode(Expr Value) : Node
{
    protected override void Write(JinjaTemplate.Scope scope, StringBuilder output) => output.Append(JinjaValues.Str(Value.Eval(scope)));
}

internal sealed record IfNode(List<(Expr Condition, List<Node> Body)> Branches, List<Node>? Else) : Node
{
    protected override void Write(JinjaTemplate.Scope scope, StringBuilder output)
    {
        foreach (var (condition, body) in Branches)
        {
            if (!JinjaValues.Truthy(condition.Eval(scope))) continue;
            foreach (var n in body) n.Render(scope, output);
            return;
        }
        foreach (var n in Else ?? []) n.Render(scope, output);
    }
}

internal sealed record ForNode(List<string> Targets, Expr Iterable, Expr? Filter, List<Node> Body, List<Node>? Else) : Node
{
    protected override void Write(JinjaTemplate.Scope scope, StringBuilder output)
    {
        var items = JinjaValues.Iterate(Iterable.Eval(scope)).ToList();
        if (Filter is not null)
        {
            items = [.. items.Where(item =>
            {
                var probe = scope.Child();
                Bind(probe, item);
                return JinjaValues.Truthy(Filter.Eval(probe));
            })];
        }
        if (items.Count == 0)
        {
            foreach (var n in Else ?? []) n.Render(scope, output);
            return;
        }
        for (var i = 0; i < items.Count; i++)
        {
            scope.CountIteration();
            var inner = scope.Child();
            Bind(inner, items[i]);
            inner.Set("loop", new Dictionary<string, object?>
            {
                ["index"] = (long)i + 1, ["index0"] = (long)i, ["first"] = i == 0, ["last"] = i == items.Count - 1,
                ["length"] = (long)items.Count, ["revindex"] = (long)(items.Count - i), ["revindex0"] = (long)(items.Count - i - 1),
                ["previtem"] = i > 0 ? items[i - 1] : Undefined.Value, ["nextitem"] = i < items.Count - 1 ? items[i + 1] : Undefined.Value,
            });
            foreach (var n in Body) n.Render(inner, output);
        }
    }

    private void Bind(JinjaTemplate.Scope scope, object? item)
    {
        if (Targets.Count == 1)
        {
            scope.Set(Targets[0], item);
            return;
        }
        var parts = JinjaValues.Iterate(item).ToList();
        if (parts.Count != Targets.Count) throw new TemplateException($"cannot unpack {parts.Count} values into {Targets.Count} loop variables");
        for (var i = 0; i < Targets.Count; i++) scope.Set(Targets[i], parts[i]);
    }
}

internal sealed record SetNode(string Name, string? Attribute, Expr Value) : Node
{
    protected override void Write(JinjaTemplate.Scope scope, StringBuilder output)
    {
        var value = Value.Eval(scope);
        if (Attribute is null)
            scope.Set(Name, value);
        else if (scope.Get(Name) is Dictionary<string, object?> ns)
            ns[Attribute] = value;
        else
            throw new TemplateException($"'{Name}' is not a namespace, so '{Name}.{Attribute}' cannot be set");
    }
}

internal abstract record Expr
{
    public object? Eval(JinjaTemplate.Scope scope)
    {
        RuntimeHelpers.EnsureSufficientExecutionStack();
        return Evaluate(scope);
    }

    protected abstract object? Evaluate(JinjaTemplate.Scope scope);
}

internal sealed record Literal(object? Value) : Expr
{
    protected override object? Evaluate(JinjaTemplate.Scope scope) => Value;
}

internal sealed record Name(string Identifier) : Expr
{
    protected override object? Evaluate(JinjaTemplate.Scope scope) => scope.Get(Identifier);
}

internal sealed record ListExpr(List<Expr> Items) : Expr
{
    protected override object? Evaluate(JinjaTemplate.Scope scope) => Items.Select(i => i.Eval(scope)).ToList();
}

internal sealed record DictExpr(List<(Expr Key, Expr Value)> Items) : Expr
{
    protected override object? Evaluate(JinjaTemplate.Scope scope) =>
        Items.ToDictionary(p => JinjaValues.Str(p.Key.Eval(scope)), p => p.Value.Eval(scope));
}

internal sealed record GetAttr(Expr Target, string Attribute) : Expr
{
    protected override object? Evaluate(JinjaTemplate.Scope scope) => JinjaValues.Attribute(Target.Eval(scope), Attribute);
}

internal sealed record GetItem(Expr Target, Expr Index) : Expr
{
    protected override object? Evaluate(JinjaTemplate.Scope scope) => JinjaValues.Item(Target.Eval(scope), Index.Eval(scope));
}

internal sealed record SliceExpr(Expr Target, Expr? Start, Expr? Stop, Expr? Step) : Expr
{
    protected override object? Evaluate(JinjaTemplate.Scope scope)
    {
        var target = Target.Eval(scope);
        long? Get(Expr? e) => e is null ? null : JinjaValues.Int(e.Eval(scope));
        var items = target is string s ? s.Select(c => (object?)c.ToString()).ToList() : JinjaValues.Iterate(target).ToList();
        var step = Get(Step) ?? 1;
        if (step == 0) throw new TemplateException("slice step cannot be zero");
        long n = items.Count;
        long Clamp(long? v, long fallback) => v is not { } x ? fallback : x < 0 ? Math.Max(x + n, step < 0 ? -1 : 0) : Math.Min(x, step < 0 ? n - 1 : n);
        var (start, stop) = step > 0 ? (Clamp(Get(Start), 0), Clamp(Get(Stop), n)) : (Clamp(Get(Start), n - 1), Clamp(Get(Stop), -1));
        var picked = new List<object?>();
        for (var i = start; step > 0 ? i < stop : i > stop; i += step) picked.Add(items[(int)i]);
        return target is string ? string.Concat(picked.Select(p => (string)p!)) : picked;
    }
}

internal sealed record Call(Expr Target, List<Expr> Args, List<(string Name, Expr Value)> Kwargs) : Expr
{
    protected override object? Evaluate(JinjaTemplate.Scope scope)
    {
        var args = Args.Select(a => a.Eval(scope)).ToList();
        var kwargs = Kwargs.ToDictionary(k => k.Name, k => k.Value.Eval(scope));
        if (Target is GetAttr method && method.Target.Eval(scope) is var self && JinjaValues.IsMethodTarget(self))
            return JinjaValues.Method(self, method.Attribute, args);
        return Target.Eval(scope) is Callable f ? f.Invoke(args, kwargs) : throw new TemplateException($"{Describe(Target)} is not a function");
    }

    private static string Describe(Expr e) => e switch { Name n => $"'{n.Identifier}'", GetAttr a => $"'.{a.Attribute}'", _ => "the value called" };
}

internal sealed record FilterExpr(Expr Value, string Filter, List<Expr> Args, List<(string Name, Expr Value)> Kwargs) : Expr
{
    protected override object? Evaluate(JinjaTemplate.Scope scope) =>
        JinjaValues.ApplyFilter(Filter, Value.Eval(scope), [.. Args.Select(a => a.Eval(scope))], Kwargs.ToDictionary(k => k.Name, k => k.Value.Eval(scope)));
}

internal sealed record TestExpr(Expr Value, string Test, bool Negated, List<Expr> Args) : Expr
{
    protected override object? Evaluate(JinjaTemplate.Scope scope) =>
        JinjaValues.ApplyTest(Test, Value.Eval(scope), [.. Args.Select(a => a.Eval(scope))]) != Negated;
}

internal sealed record Unary(string Op, Expr Operand) : Expr
{
    protected override object? Evaluate(JinjaTemplate.Scope scope)
    {
        var v = Operand.Eval(scope);
        return Op switch
        {
            "not" => !JinjaValues.Truthy(v),
            "-" => v is double d ? -d : (object)-JinjaValues.Int(v),
            _ => v,
        };
    }
}

internal sealed record Binary(string Op, Expr Left, Expr Right) : Expr
{
    protected override object? Evaluate(JinjaTemplate.Scope scope)
    {
        if (Op == "and")
        {
            var l = Left.Eval(scope);
            return JinjaValues.Truthy(l) ? Right.Eval(scope) : l;
        }
        if (Op == "or")
        {
            var l = Left.Eval(scope);
            return JinjaValues.Truthy(l) ? l : Right.Eval(scope);
        }
        return JinjaValues.Binary(Op, Left.Eval(scope), Right.Eval(scope));
    }
}

internal sealed record Conditional(Expr Condition, Expr Then, Expr? Else) : Expr
{
    protected override object? Evaluate(JinjaTemplate.Scope scope) =>
        JinjaValues.Truthy(Condition.Eval(scope)) ? Then.Eval(scope) : Else is null ? Undefined.Value : Else.Eval(scope);
}

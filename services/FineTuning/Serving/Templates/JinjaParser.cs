// Over 400 lines on purpose: one recursive-descent parser of the Jinja subset chat templates use (statements,
// expressions, filters and tests share the token stream and precedence levels); split, they would share its internals.
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;

namespace AspireTune.FineTuning.Serving.Templates;

internal enum SegmentKind { Text, Output, Statement }

internal enum TokenKind { Name, String, Number, Op, End }

internal sealed record Token(TokenKind Kind, string Text, object? Value = null);

internal sealed record Segment(SegmentKind Kind, string Text, List<Token> Tokens, int Offset);

/// <summary>Splits a template into text, <c>{{ }}</c> and <c>{% %}</c> segments, applying whitespace control, trim_blocks and lstrip_blocks.</summary>
internal static class JinjaLexer
{
    public static List<Segment> Split(string source)
    {
        var segments = new List<Segment>();
        var text = new StringBuilder();
        var i = 0;
        var trimNextNewline = false;
        var stripNextWhitespace = false;
        while (i < source.Length)
        {
            var open = NextOpen(source, i);
            var chunk = source[i..(open < 0 ? source.Length : open)];
            if (stripNextWhitespace) chunk = chunk.TrimStart();
            else if (trimNextNewline && chunk.StartsWith('\n')) chunk = chunk[1..];
            else if (trimNextNewline && chunk.StartsWith("\r\n", StringComparison.Ordinal)) chunk = chunk[2..];
            text.Append(chunk);
            trimNextNewline = stripNextWhitespace = false;
            if (open < 0) break;
            var kind = source[open + 1];
            var start = open + 2;
            var leftStrip = start < source.Length && source[start] == '-';
            var leftKeep = start < source.Length && source[start] == '+';
            if (leftStrip || leftKeep) start++;
            var close = kind == '#' ? source.IndexOf("#}", start, StringComparison.Ordinal) : FindClose(source, start, kind == '{' ? "}}" : "%}");
            if (close < 0) throw new TemplateException($"at offset {open}: '{source.Substring(open, 2)}' is never closed");
            var end = close;
            var rightStrip = end > start && source[end - 1] == '-';
            if (rightStrip) end--;
            var block = kind != '{';
            if (leftStrip)
                TrimEnd(text, all: true);
            else if (block && !leftKeep)
                TrimEnd(text, all: false); // lstrip_blocks: spaces and tabs before a block tag on its own line
            if (text.Length > 0) segments.Add(new Segment(SegmentKind.Text, text.ToString(), [], open));
            text.Clear();
            var inner = source[start..end];
            if (kind != '#')
                segments.Add(new Segment(kind == '{' ? SegmentKind.Output : SegmentKind.Statement, inner, Tokenize(inner, start), open));
            i = close + 2;
            stripNextWhitespace = rightStrip;
            trimNextNewline = block && !rightStrip; // trim_blocks
        }
        if (text.Length > 0) segments.Add(new Segment(SegmentKind.Text, text.ToString(), [], source.Length));
        return segments;
    }

    private static int NextOpen(string s, int from)
    {
        for (var i = s.IndexOf('{', from); i >= 0 && i < s.Length - 1; i = s.IndexOf('{', i + 1))
            if (s[i + 1] is '{' or '%' or '#') return i;
        return -1;
    }

    private static int FindClose(string s, int from, string close)
    {
        char? quote = null;
        for (var i = from; i < s.Length - 1; i++)
        {
            var c = s[i];
            if (quote is { } q)
            {
                if (c == '\\') i++;
                else if (c == q) quote = null;
            }
            else if (c is '\'' or '"') quote = c;
            else if (c == close[0] && s[i + 1] == close[1]) return i;
        }
        return -1;
    }

    /// <summary>Removes trailing whitespace: all of it, or (lstrip_blocks) the spaces and tabs after the last newline when only they stand there.</summary>
    private static void TrimEnd(StringBuilder text, bool all)
    {
        var n = text.Length;
        while (n > 0 && (all ? char.IsWhiteSpace(text[n - 1]) : text[n - 1] is ' ' or '\t')) n--;
        if (!all && n > 0 && text[n - 1] != '\n') return;
        text.Length = n;
    }

    private static readonly string[] Operators = ["//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "(", ")", "[", "]", "{", "}", ".", ",", ":", "|", "="];

    private static List<Token> Tokenize(string s, int offset)
    {
        var tokens = new List<Token>();
        var i = 0;
        while (i < s.Length)
        {
            var c = s[i];
            if (char.IsWhiteSpace(c))
            {
                i++;
            }
            else if (char.IsLetter(c) || c == '_')
            {
                var j = i;
                while (j < s.Length && (char.IsLetterOrDigit(s[j]) || s[j] == '_')) j++;
                tokens.Add(new Token(TokenKind.Name, s[i..j]));
                i = j;
            }
            else if (char.IsDigit(c))
            {
                var j = i;
                while (j < s.Length && (char.IsDigit(s[j]) || (s[j] == '.' && j + 1 < s.Length && char.IsDigit(s[j + 1])))) j++;
                var number = s[i..j];
                tokens.Add(new Token(TokenKind.Number, number, number.Contains('.')
                    ? double.Parse(number, CultureInfo.InvariantCulture) : (object)long.Parse(number, CultureInfo.InvariantCulture))); // (object): else the conditional makes every literal a double
                i = j;
            }
            else if (c is '\'' or '"')
            {
                var value = new StringBuilder();
                var j = i + 1;
                for (; j < s.Length && s[j] != c; j++)
                {
                    if (s[j] != '\\' || j + 1 >= s.Length)
                    {
                        value.Append(s[j]);
                        continue;
                    }
                    j++;
                    value.Append(s[j] switch { 'n' => '\n', 't' => '\t', 'r' => '\r', '0' => '\0', _ => s[j] });
                }
                if (j >= s.Length) throw new TemplateException($"at offset {offset + i}: a string is never closed");
                tokens.Add(new Token(TokenKind.String, s[i..(j + 1)], value.ToString()));
                i = j + 1;
            }
            else
            {
                var op = Operators.FirstOrDefault(o => string.CompareOrdinal(s, i, o, 0, o.Length) == 0)
                    ?? throw new TemplateException($"at offset {offset + i}: unexpected character '{c}'");
                tokens.Add(new Token(TokenKind.Op, op));
                i += op.Length;
            }
        }
        tokens.Add(new Token(TokenKind.End, ""));
        return tokens;
    }
}

/// <summary>Builds the node tree from the segments: statements by their keyword, expressions by precedence as Jinja orders them.</summary>
internal sealed class JinjaParser(List<Segment> segments)
{
    private int _segment;
    private List<Token> _tokens = [];
    private int _pos;

    public List<Node> ParseBody()
    {
        var (body, end) = ParseUntil();
        if (end is not null) throw new TemplateException($"'{end}' without the tag it closes");
        return body;
    }

    /// <summary>Nodes until one of <paramref name="stops"/> (returned, its tokens positioned after the keyword) or the end.</summary>
    private (List<Node> Body, string? Stop) ParseUntil(params string[] stops)
    {
        RuntimeHelpers.EnsureSufficientExecutionStack(); // nested blocks; JinjaTemplate.Parse makes it a TemplateException
        var body = new List<Node>();
        while (_segment < segments.Count)
        {
            var seg = segments[_segment++];
            switch (seg.Kind)
            {
                case SegmentKind.Text:
                    body.Add(new TextNode(seg.Text));
                    break;
                case SegmentKind.Output:
                    Begin(seg);
                    body.Add(new OutputNode(ParseExpression()));
                    Finish(seg);
                    break;
                default:
                    Begin(seg);
                    var keyword = ExpectName();
                    if (stops.Contains(keyword)) return (body, keyword);
                    body.Add(ParseStatement(keyword, seg));
                    break;
            }
        }
        if (stops.Length > 0) throw new TemplateException($"the template ends before '{stops[^1]}'");
        return (body, null);
    }

    private Node ParseStatement(string keyword, Segment seg)
    {
        switch (keyword)
        {
            case "if":
            {
                var branches = new List<(Expr, List<Node>)>();
                var condition = ParseExpression();
                Finish(seg);
                List<Node>? otherwise = null;
                while (true)
                {
                    var (body, stop) = ParseUntil("elif", "else", "endif");
                    branches.Add((condition, body));
                    var at = segments[_segment - 1];
                    if (stop == "elif")
                    {
                        condition = ParseExpression();
                        Finish(at);
                        continue;
                    }
                    Finish(at);
                    if (stop == "else")
                    {
                        (otherwise, _) = ParseUntil("endif");
                        Finish(segments[_segment - 1]);
                    }
                    return new IfNode(branches, otherwise);
                }
            }
            case "for":
            {
                var targets = new List<string> { ExpectName() };
                while (Accept(","))
                    targets.Add(ExpectName());
                if (ExpectName() != "in") throw Error(seg, "expected 'in'");
                var iterable = ParseOr();
                Expr? filter = null;
                if (AcceptName("if")) filter = ParseOr();
                Finish(seg);
                var (body, stop) = ParseUntil("else", "endfor");
                Finish(segments[_segment - 1]);
                List<Node>? otherwise = null;
                if (stop == "else")
                {
                    (otherwise, _) = ParseUntil("endfor");
                    Finish(segments[_segment - 1]);
                }
                return new ForNode(targets, iterable, filter, body, otherwise);
            }
            case "set":
            {
                var name = ExpectName();
                string? attribute = Accept(".") ? ExpectName() : null;
                if (!Accept("=")) throw Error(seg, "block 'set' (without '=') is not supported");
                var value = ParseExpression();
                Finish(seg);
                return new SetNode(name, attribute, value);
            }
            case "generation" or "endgeneration":
                Finish(seg);
                return new TextNode("");
            default:
                throw Error(seg, $"the statement '{keyword}' is not supported by this Jinja subset");
        }
    }

    private void Begin(Segment seg)
    {
        _tokens = seg.Tokens;
        _pos = 0;
    }

    private void Finish(Segment seg)
    {
        if (Peek.Kind != TokenKind.End) throw Error(seg, $"unexpected '{Peek.Text}'");
    }

    private static TemplateException Error(Segment seg, string message) => new($"at offset {seg.Offset} ('{seg.Text.Trim()}'): {message}");

    private Token Peek => _tokens[_pos];

    private Token Next() => _tokens[_pos++];

    private bool Accept(string op)
    {
        if (Peek.Kind != TokenKind.Op || Peek.Text != op) return false;
        _pos++;
        return true;
    }

    private bool AcceptName(string name)
    {
        if (Peek.Kind != TokenKind.Name || Peek.Text != name) return false;
        _pos++;
        return true;
    }

    private void Expect(string op)
    {
        if (!Accept(op)) throw new TemplateException($"expected '{op}' but found '{Peek.Text}'");
    }

    private string ExpectName() =>
        Peek.Kind == TokenKind.Name ? Next().Text : throw new TemplateException($"expected a name but found '{Peek.Text}'");

    private Expr ParseExpression()
    {
        RuntimeHelpers.EnsureSufficientExecutionStack(); // nested parentheses, brackets and calls
        var value = ParseOr();
        if (!AcceptName("if")) return value;
        var condition = ParseOr();
        return new Conditional(condition, value, AcceptName("else") ? ParseExpression() : null);
    }

    private Expr ParseOr()
    {
        var left = ParseAnd();
        while (AcceptName("or")) left = new Binary("or", left, ParseAnd());
        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (AcceptName("and")) left = new Binary("and", left, ParseNot());
        return left;
    }

    private Expr ParseNot()
    {
        RuntimeHelpers.EnsureSufficientExecutionStack();
        return AcceptName("not") ? new Unary("not", ParseNot()) : ParseCompare();
    }

    private static readonly string[] Comparisons = ["==", "!=", "<", ">", "<=", ">="];

    private Expr ParseCompare()
    {
        var left = ParseConcat();
        while (true)
        {
            if (Peek.Kind == TokenKind.Op && Comparisons.Contains(Peek.Text))
                left = new Binary(Next().Text, left, ParseConcat());
            else if (AcceptName("in"))
                left = new Binary("in", left, ParseConcat());
            else if (Peek.Kind == TokenKind.Name && Peek.Text == "not" && _tokens[_pos + 1] is { Kind: TokenKind.Name, Text: "in" })
            {
                _pos += 2;
                left = new Unary("not", new Binary("in", left, ParseConcat()));
            }
            else if (AcceptName("is"))
            {
                var negated = AcceptName("not");
                var test = ExpectName();
                var args = new List<Expr>();
                if (Accept("("))
                    args = ParseArguments().Args;
                else if (Peek.Kind is TokenKind.String or TokenKind.Number)
                    args.Add(ParsePrimary());
                left = new TestExpr(left, test, negated, args);
            }
            else
                return left;
        }
    }

    private Expr ParseConcat()
    {
        var left = ParseAdditive();
        while (Accept("~")) left = new Binary("~", left, ParseAdditive());
        return left;
    }

    private Expr ParseAdditive()
    {
        var left = ParseMultiplicative();
        while (Peek.Kind == TokenKind.Op && Peek.Text is "+" or "-")
            left = new Binary(Next().Text, left, ParseMultiplicative());
        return left;
    }

    private Expr ParseMultiplicative()
    {
        var left = ParseUnary();
        while (Peek.Kind == TokenKind.Op && Peek.Text is "*" or "/" or "//" or "%")
            left = new Binary(Next().Text, left, ParseUnary());
        return left;
    }

    private Expr ParseUnary()
    {
        RuntimeHelpers.EnsureSufficientExecutionStack();
        if (Accept("-")) return new Unary("-", ParseUnary());
        if (Accept("+")) return ParseUnary();
        var value = ParsePostfix(ParsePrimary());
        while (Accept("|"))
        {
            var name = ExpectName();
            var (args, kwargs) = Accept("(") ? ParseArguments() : ([], []);
            value = ParsePostfix(new FilterExpr(value, name, args, kwargs));
        }
        return value;
    }

    private Expr ParsePostfix(Expr value)
    {
        while (true)
        {
            if (Accept("."))
                value = new GetAttr(value, ExpectName());
            else if (Accept("["))
            {
                Expr? start = Peek.Text == ":" ? null : ParseExpression();
                if (Accept(":"))
                {
                    Expr? stop = Peek.Text is ":" or "]" ? null : ParseExpression();
                    Expr? step = Accept(":") && Peek.Text != "]" ? ParseExpression() : null;
                    Expect("]");
                    value = new SliceExpr(value, start, stop, step);
                }
                else
                {
                    Expect("]");
                    value = new GetItem(value, start!);
                }
            }
            else if (Accept("("))
            {
                var (args, kwargs) = ParseArguments();
                value = new Call(value, args, kwargs);
            }
            else
                return value;
        }
    }

    /// <summary>Arguments after an opening parenthesis, through the closing one.</summary>
    private (List<Expr> Args, List<(string, Expr)> Kwargs) ParseArguments()
    {
        var args = new List<Expr>();
        var kwargs = new List<(string, Expr)>();
        while (!Accept(")"))
        {
            if (Peek.Kind == TokenKind.Name && _tokens[_pos + 1] is { Kind: TokenKind.Op, Text: "=" })
            {
                var name = Next().Text;
                _pos++;
                kwargs.Add((name, ParseExpression()));
            }
            else
                args.Add(ParseExpression());
            if (!Accept(","))
            {
                Expect(")");
                break;
            }
        }
        return (args, kwargs);
    }

    private Expr ParsePrimary()
    {
        var token = Next();
        switch (token.Kind)
        {
            case TokenKind.String:
                // Adjacent string literals concatenate, as in Python.
                var text = (string)token.Value!;
                while (Peek.Kind == TokenKind.String) text += (string)Next().Value!;
                return new Literal(text);
            case TokenKind.Number:
                return new Literal(token.Value);
            case TokenKind.Name:
                return token.Text switch
                {
                    "true" or "True" => new Literal(true),
                    "false" or "False" => new Literal(false),
                    "none" or "None" => new Literal(null),
                    _ => new Name(token.Text),
                };
            case TokenKind.Op when token.Text == "(":
            {
                var inner = ParseExpression();
                if (Accept(","))
                {
                    var items = new List<Expr> { inner };
                    while (!Accept(")"))
                    {
                        items.Add(ParseExpression());
                        if (!Accept(",")) { Expect(")"); break; }
                    }
                    return new ListExpr(items);
                }
                Expect(")");
                return inner;
            }
            case TokenKind.Op when token.Text == "[":
            {
                var items = new List<Expr>();
                while (!Accept("]"))
                {
                    items.Add(ParseExpression());
                    if (!Accept(",")) { Expect("]"); break; }
                }
                return new ListExpr(items);
            }
            case TokenKind.Op when token.Text == "{":
            {
                var items = new List<(Expr, Expr)>();
                while (!Accept("}"))
                {
                    var key = ParseExpression();
                    Expect(":");
                    items.Add((key, ParseExpression()));
                    if (!Accept(",")) { Expect("}"); break; }
                }
                return new DictExpr(items);
            }
            default:
                throw new TemplateException(token.Kind == TokenKind.End ? "an expression ends too early" : $"unexpected '{token.Text}'");
        }
    }
}

using System.Collections;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace AspireTune.FineTuning.Serving.Templates;

/// <summary>Values as Jinja (and so Python) treats them: truth, text, equality, arithmetic, filters, tests and methods.</summary>
internal static class JinjaValues
{
    /// <summary>JSON (tools, tool-call arguments) as template values: objects become dictionaries, arrays lists.</summary>
    public static object? FromJson(JsonNode? node) => node switch
    {
        null => null,
        JsonObject o => o.ToDictionary(p => p.Key, p => FromJson(p.Value)),
        JsonArray a => a.Select(FromJson).ToList(),
        JsonValue v when v.TryGetValue<bool>(out var b) => b,
        JsonValue v when v.TryGetValue<long>(out var l) => l,
        JsonValue v when v.TryGetValue<double>(out var d) => d,
        JsonValue v => v.ToString(),
        _ => node.ToJsonString(),
    };

    public static bool Truthy(object? v) => v switch
    {
        null or Undefined => false,
        bool b => b,
        string s => s.Length > 0,
        long l => l != 0,
        double d => d != 0,
        ICollection c => c.Count > 0,
        _ => true,
    };

    /// <summary>What Python's str.strip() and split() take as whitespace (str.isspace): .NET's, and U+001C-U+001F besides.</summary>
    private static readonly char[] PyWhitespace = [.. Enumerable.Range(0, 0x3001).Select(i => (char)i).Where(c => char.IsWhiteSpace(c) || c is >= '\x1c' and <= '\x1f')];

    public static string Str(object? v) => v switch
    {
        null => "None",
        Undefined => "",
        string s => s,
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => PyFloat(d),
        IDictionary or IList => Repr(v, new StringBuilder()).ToString(),
        _ => v.ToString() ?? "",
    };

    private static string PyFloat(double d) =>
        double.IsInteger(d) && Math.Abs(d) < 1e16 ? d.ToString("0.0", CultureInfo.InvariantCulture) : d.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>Python's repr of lists and dicts, as <c>{{ list }}</c> prints them (bounded as any string the template builds).</summary>
    private static StringBuilder Repr(object? v, StringBuilder sb)
    {
        switch (v)
        {
            case string s:
                sb.Append('\'').Append(s.Replace("\\", "\\\\").Replace("'", "\\'")).Append('\'');
                break;
            case IDictionary<string, object?> d:
                sb.Append('{');
                foreach (var (i, p) in d.Index())
                    Repr(p.Value, Repr(p.Key, sb.Append(i > 0 ? ", " : "")).Append(": "));
                sb.Append('}');
                break;
            case IList l:
                sb.Append('[');
                for (var i = 0; i < l.Count; i++)
                    Repr(l[i], sb.Append(i > 0 ? ", " : ""));
                sb.Append(']');
                break;
            default:
                sb.Append(Str(v));
                break;
        }
        JinjaLimits.CheckLength(sb.Length);
        return sb;
    }

    public static IEnumerable<object?> Iterate(object? v) => v switch
    {
        null or Undefined => [],
        string s => s.Select(c => (object?)c.ToString()),
        IDictionary<string, object?> d => d.Keys,
        IList l => l.Cast<object?>(),
        _ => throw new TemplateException($"a {TypeName(v)} cannot be iterated"),
    };

    public static long Int(object? v) => v switch
    {
        long l => l,
        double d => (long)d,
        bool b => b ? 1 : 0,
        string s when long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var l) => l,
        _ => throw new TemplateException($"a {TypeName(v)} is not a number"),
    };

    private static string TypeName(object? v) => v switch
    {
        null => "none", Undefined => "undefined value", string => "string", bool => "boolean", long or double => "number",
        IDictionary => "mapping", IList => "list", _ => v.GetType().Name,
    };

    public static object? Attribute(object? target, string name) => target switch
    {
        IDictionary<string, object?> d => d.TryGetValue(name, out var v) ? v : Undefined.Value,
        _ => Undefined.Value,
    };

    public static object? Item(object? target, object? index) => target switch
    {
        IDictionary<string, object?> d => d.TryGetValue(Str(index), out var v) ? v : Undefined.Value,
        IList l when index is long or double => At(l.Count, Int(index)) is { } i ? l[i] : Undefined.Value,
        string s when index is long or double => At(s.Length, Int(index)) is { } i ? s[i].ToString() : Undefined.Value,
        _ => Undefined.Value,
    };

    private static int? At(int count, long index)
    {
        var i = index < 0 ? index + count : index;
        return i >= 0 && i < count ? (int)i : null;
    }

    public static bool IsMethodTarget(object? v) => v is string or IDictionary<string, object?>;

    public static object? Method(object? self, string name, List<object?> args)
    {
        string Arg(int i) => i < args.Count ? Str(args[i]) : throw new TemplateException($"{name}() needs {i + 1} argument(s)");
        char[] Chars() => args.Count > 0 && args[0] is string chars ? chars.ToCharArray() : PyWhitespace; // strip(None) is strip()
        if (self is string s)
        {
            return name switch
            {
                "strip" => s.Trim(Chars()),
                "lstrip" => s.TrimStart(Chars()),
                "rstrip" => s.TrimEnd(Chars()),
                "upper" => s.ToUpperInvariant(),
                "lower" => s.ToLowerInvariant(),
                "title" => CultureInfo.InvariantCulture.TextInfo.ToTitleCase(s.ToLowerInvariant()),
                "capitalize" => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant(),
                "startswith" => s.StartsWith(Arg(0), StringComparison.Ordinal),
                "endswith" => s.EndsWith(Arg(0), StringComparison.Ordinal),
                "replace" => Replace(s, Arg(0), Arg(1)),
                "split" => args.Count > 0
                    ? s.Split(Arg(0)).Select(p => (object?)p).ToList()
                    : s.Split(PyWhitespace, StringSplitOptions.RemoveEmptyEntries).Select(p => (object?)p).ToList(),
                "format" => PercentFormat(s, args),
                _ => throw new TemplateException($"strings have no method '{name}' here"),
            };
        }
        var d = (IDictionary<string, object?>)self!;
        return name switch
        {
            "items" => d.Select(p => (object?)new List<object?> { p.Key, p.Value }).ToList(),
            "keys" => d.Keys.Select(k => (object?)k).ToList(),
            "values" => d.Values.ToList(),
            "get" => d.TryGetValue(Arg(0), out var v) ? v : args.Count > 1 ? args[1] : null,
            _ => d.TryGetValue(name, out var f) && f is Callable c ? c.Invoke(args, []) : throw new TemplateException($"mappings have no method '{name}' here"),
        };
    }

    private static string PercentFormat(string format, List<object?> args)
    {
        var parts = System.Text.RegularExpressions.Regex.Split(format, "%[sd]");
        return Join("", [.. parts.SelectMany((p, i) => i == 0 ? [p] : new[] { i - 1 < args.Count ? Str(args[i - 1]) : "", p })]);
    }

    /// <summary>Python's str.replace (an empty <paramref name="old"/> inserts <paramref name="replacement"/> around every character), bounded.</summary>
    private static string Replace(string s, string old, string replacement)
    {
        if (old.Length == 0)
            return Join(replacement, ["", .. s.Select(c => c.ToString()), ""]);
        long count = 0;
        for (var at = s.IndexOf(old, StringComparison.Ordinal); at >= 0; at = s.IndexOf(old, at + old.Length, StringComparison.Ordinal)) count++;
        JinjaLimits.CheckLength(s.Length + count * (replacement.Length - old.Length));
        return s.Replace(old, replacement, StringComparison.Ordinal);
    }

    /// <summary>string.Join, refused before it is built when the result would be longer than <see cref="JinjaLimits.MaxChars"/>.</summary>
    private static string Join(string separator, List<string> parts)
    {
        JinjaLimits.CheckLength(parts.Sum(p => (long)p.Length) + (long)separator.Length * Math.Max(parts.Count - 1, 0));
        return string.Join(separator, parts);
    }

    public static object? ApplyFilter(string name, object? v, List<object?> args, Dictionary<string, object?> kwargs) => name switch
    {
        "trim" => Str(v).Trim(PyWhitespace),
        "length" or "count" => v switch { string s => (long)s.Length, ICollection c => (long)c.Count, _ => 0L },
        "tojson" => ToJson(v, kwargs.TryGetValue("indent", out var indent) || args.Count > 0 ? (int?)Int(indent ?? args[0]) : null),
        "upper" => Str(v).ToUpperInvariant(),
        "lower" => Str(v).ToLowerInvariant(),
        "capitalize" => Method(Str(v), "capitalize", []),
        "title" => Method(Str(v), "title", []),
        "string" => Str(v),
        "int" => v is string s && !long.TryParse(s, CultureInfo.InvariantCulture, out _) ? 0L : Int(v),
        "abs" => v is double dd ? Math.Abs(dd) : Math.Abs(Int(v)),
        "first" => Iterate(v).FirstOrDefault(Undefined.Value),
        "last" => Iterate(v).LastOrDefault(Undefined.Value),
        "list" => Iterate(v).ToList(),
        "reverse" => v is string rs ? new string(rs.Reverse().ToArray()) : Iterate(v).Reverse().ToList(),
        "join" => Join(args.Count > 0 ? Str(args[0]) : "", [.. Iterate(v).Select(Str)]),
        "default" or "d" => v is Undefined || (args.Count > 1 && Truthy(args[1]) && !Truthy(v)) ? (args.Count > 0 ? args[0] : "") : v,
        "replace" => Replace(Str(v), Str(args.ElementAtOrDefault(0)), Str(args.ElementAtOrDefault(1))),
        "items" => Method(v as IDictionary<string, object?> ?? throw new TemplateException("items needs a mapping"), "items", []),
        "safe" or "e" or "escape" => v,
        "selectattr" or "rejectattr" => SelectAttr(v, args, name == "rejectattr"),
        "map" when kwargs.TryGetValue("attribute", out var attr) => Iterate(v).Select(x => Attribute(x, Str(attr))).ToList(),
        _ => throw new TemplateException($"the filter '{name}' is not supported by this Jinja subset"),
    };

    private static List<object?> SelectAttr(object? v, List<object?> args, bool reject)
    {
        var attribute = Str(args.ElementAtOrDefault(0));
        bool Keep(object? item)
        {
            var value = Attribute(item, attribute);
            var result = args.Count > 1 ? ApplyTest(Str(args[1]), value, args.Skip(2).ToList()) : Truthy(value);
            return result != reject;
        }
        return [.. Iterate(v).Where(Keep)];
    }

    public static bool ApplyTest(string name, object? v, List<object?> args) => name switch
    {
        "defined" => v is not Undefined,
        "undefined" => v is Undefined,
        "none" => v is null,
        "string" => v is string,
        "number" => v is long or double,
        "integer" => v is long,
        "float" => v is double,
        "boolean" => v is bool,
        "true" => v is true,
        "false" => v is false,
        "mapping" => v is IDictionary<string, object?>,
        "sequence" or "iterable" => v is string or IList or IDictionary<string, object?>,
        "even" => Int(v) % 2 == 0,
        "odd" => Int(v) % 2 != 0,
        "equalto" or "eq" or "sameas" => Equal(v, args.ElementAtOrDefault(0)),
        "in" => Contains(args.ElementAtOrDefault(0), v),
        _ => throw new TemplateException($"the test '{name}' is not supported by this Jinja subset"),
    };

    public static object? Binary(string op, object? l, object? r) => op switch
    {
        "==" => Equal(l, r),
        "!=" => !Equal(l, r),
        "<" => Compare(l, r) < 0,
        ">" => Compare(l, r) > 0,
        "<=" => Compare(l, r) <= 0,
        ">=" => Compare(l, r) >= 0,
        "in" => Contains(r, l),
        "~" => Join("", [Str(l), Str(r)]),
        "%" when l is string format => PercentFormat(format, r is IList tuple ? [.. tuple.Cast<object?>()] : [r]),
        "+" => (l, r) switch
        {
            (string a, string b) => Join("", [a, b]),
            (IList a, IList b) => Concat(a, b),
            _ => Arithmetic(op, l, r),
        },
        _ => Arithmetic(op, l, r),
    };

    private static List<object?> Concat(IList a, IList b)
    {
        JinjaLimits.CheckLength((long)a.Count + b.Count);
        return [.. a.Cast<object?>(), .. b.Cast<object?>()];
    }

    private static object Arithmetic(string op, object? l, object? r)
    {
        if (l is not (long or double or bool) || r is not (long or double or bool))
            throw new TemplateException($"'{op}' cannot combine a {TypeName(l)} and a {TypeName(r)}");
        if (l is double || r is double || op == "/")
        {
            double a = l is double x ? x : Int(l), b = r is double y ? y : Int(r);
            return op switch
            {
                "+" => a + b, "-" => a - b, "*" => a * b,
                "/" => b == 0 ? throw new TemplateException("division by zero") : a / b,
                "//" => Math.Floor(a / b), "%" => a - b * Math.Floor(a / b),
                _ => throw new TemplateException($"unknown operator '{op}'"),
            };
        }
        long p = Int(l), q = Int(r);
        if (op is "//" or "%" && q == 0) throw new TemplateException("division by zero");
        return op switch
        {
            "+" => p + q, "-" => p - q, "*" => p * q,
            "//" => (long)Math.Floor((double)p / q),
            "%" => ((p % q) + q) % q, // Python's sign follows the divisor
            _ => throw new TemplateException($"unknown operator '{op}'"),
        };
    }

    public static bool Equal(object? l, object? r) => (l, r) switch
    {
        (null, null) => true,
        (Undefined, Undefined) => true,
        (bool a, bool b) => a == b,
        (long or double, long or double) => Convert.ToDouble(l, CultureInfo.InvariantCulture) == Convert.ToDouble(r, CultureInfo.InvariantCulture),
        (string a, string b) => a == b,
        (IList a, IList b) => a.Count == b.Count && a.Cast<object?>().Zip(b.Cast<object?>()).All(p => Equal(p.First, p.Second)),
        _ => ReferenceEquals(l, r),
    };

    private static int Compare(object? l, object? r) => (l, r) switch
    {
        (string a, string b) => string.CompareOrdinal(a, b),
        (long or double or bool, long or double or bool) => (l is double x ? x : Int(l)).CompareTo(r is double y ? y : Int(r)),
        _ => throw new TemplateException($"a {TypeName(l)} and a {TypeName(r)} cannot be ordered"),
    };

    private static bool Contains(object? container, object? item) => container switch
    {
        string s => s.Contains(Str(item), StringComparison.Ordinal),
        IDictionary<string, object?> d => item is string k && d.ContainsKey(k),
        IList l => l.Cast<object?>().Any(x => Equal(x, item)),
        null or Undefined => false,
        _ => throw new TemplateException($"'in' needs a string, list or mapping, not a {TypeName(container)}"),
    };

    /// <summary>JSON as transformers' <c>tojson</c> writes it (Python's json.dumps, non-ASCII kept): ", " and ": " separators.</summary>
    public static string ToJson(object? v, int? indent = null)
    {
        var sb = new StringBuilder();
        Write(v, 0);
        return sb.ToString();

        void Write(object? x, int depth)
        {
            switch (x)
            {
                case null or Undefined:
                    sb.Append("null");
                    break;
                case bool b:
                    sb.Append(b ? "true" : "false");
                    break;
                case long l:
                    sb.Append(l.ToString(CultureInfo.InvariantCulture));
                    break;
                case double d:
                    sb.Append(PyFloat(d));
                    break;
                case string s:
                    sb.Append('"');
                    foreach (var c in s)
                        sb.Append(c switch
                        {
                            '"' => "\\\"", '\\' => "\\\\", '\n' => "\\n", '\r' => "\\r", '\t' => "\\t", '\b' => "\\b", '\f' => "\\f",
                            < ' ' => $"\\u{(int)c:x4}",
                            _ => c.ToString(),
                        });
                    sb.Append('"');
                    break;
                case IDictionary<string, object?> dict:
                    Container('{', '}', dict.Select(p => (Action)(() => { Write(p.Key, depth + 1); sb.Append(": "); Write(p.Value, depth + 1); })).ToList(), depth);
                    break;
                case IList list:
                    Container('[', ']', list.Cast<object?>().Select(i => (Action)(() => Write(i, depth + 1))).ToList(), depth);
                    break;
                default:
                    Write(Str(x), depth);
                    break;
            }
        }

        void Container(char open, char close, List<Action> items, int depth)
        {
            sb.Append(open);
            for (var i = 0; i < items.Count; i++)
            {
                if (i > 0) sb.Append(indent is null ? ", " : ",");
                if (indent is { } n)
                {
                    var pad = Math.Max(0L, (long)n * (depth + 1)); // Python's ' ' * -4 is ''
                    JinjaLimits.CheckLength(sb.Length + pad);
                    sb.Append('\n').Append(' ', (int)pad);
                }
                items[i]();
                JinjaLimits.CheckLength(sb.Length);
            }
            if (indent is { } m && items.Count > 0) sb.Append('\n').Append(' ', Math.Max(0, m * depth));
            sb.Append(close);
        }
    }
}

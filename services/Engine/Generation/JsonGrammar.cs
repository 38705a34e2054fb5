// Over 400 lines on purpose: one automaton (schema compiler and byte-level matcher share the state types);
// split, neither half is readable alone.
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace AspireTune.Engine.Generation;

/// <summary>A JSON Schema keyword or shape the grammar cannot enforce; <see cref="Path"/> points at it.</summary>
public sealed class UnsupportedSchemaException(string path, string message) : Exception(message)
{
    public string Path { get; } = path;
}

/// <summary>
/// A byte-level pushdown automaton for JSON values, compiled from a JSON Schema (or "any object" for
/// <c>json_object</c>). It accepts output one byte at a time and says whether a byte may come next, which is
/// what a token mask needs: a token is allowed when the automaton accepts every one of its bytes (the
/// grammar-constrained decoding of llama.cpp and vLLM, here over raw token bytes of a byte-level BPE).
/// It emits compact JSON: no whitespace between tokens, object properties in the schema's order.
/// </summary>
public sealed class JsonGrammar
{
    /// <summary>Digits allowed in an integer part, a fraction and an exponent, so a number always fits a double.</summary>
    public const int MaxIntegerDigits = 15, MaxFractionDigits = 15, MaxExponentDigits = 3;

    /// <summary>How deep <c>json_object</c>'s free-form values may nest.</summary>
    public const int MaxFreeDepth = 16;

    internal Node Root { get; }

    private JsonGrammar(Node root) => Root = root;

    /// <summary>Any JSON object (<c>response_format: json_object</c>).</summary>
    public static JsonGrammar AnyObject() => new(new FreeNode(MaxFreeDepth, objectOnly: true));

    /// <summary>
    /// Compiles a schema. Supported: <c>type</c> (one or a list), <c>properties</c>, <c>required</c>,
    /// <c>additionalProperties</c> (only declared properties are generated, so any value holds), <c>items</c>,
    /// <c>minItems</c>, <c>maxItems</c>, <c>minLength</c>, <c>maxLength</c>, <c>enum</c>, <c>const</c>,
    /// <c>anyOf</c>, <c>$ref</c> to <c>#/$defs/...</c> or <c>#/definitions/...</c> (recursion included), and the
    /// annotations <c>title</c>, <c>description</c>, <c>default</c>, <c>examples</c>. Any other keyword throws
    /// <see cref="UnsupportedSchemaException"/> rather than be silently ignored.
    /// </summary>
    public static JsonGrammar FromSchema(JsonNode schema) => new(new SchemaCompiler(schema).Compile(schema, "schema"));

    /// <summary>
    /// One tool call, <c>{"name":"&lt;tool&gt;","arguments":{...}}</c>, where the arguments follow that tool's parameters
    /// schema (each compiled on its own, so its <c>$ref</c>s resolve against it); a null schema takes <c>{}</c>. The
    /// two keys may be named otherwise, as a model writes its calls (Llama 3.1: <c>parameters</c>).
    /// </summary>
    public static JsonGrammar ToolCall(IReadOnlyList<(string Name, JsonNode? Parameters)> tools, string nameKey = "name", string argumentsKey = "arguments")
    {
        var options = tools.Select((t, i) => (Node)new ObjectNode(
        [
            new Property(nameKey, Encoding.UTF8.GetBytes(JsonSerializer.Serialize(nameKey) + ":"), new LiteralNode([Encoding.UTF8.GetBytes(JsonSerializer.Serialize(t.Name))]), true),
            new Property(argumentsKey, Encoding.UTF8.GetBytes(JsonSerializer.Serialize(argumentsKey) + ":"),
                t.Parameters is null ? new ObjectNode([]) : new SchemaCompiler(t.Parameters).Compile(t.Parameters, $"tools[{i}].function.parameters"), true),
        ])).ToList();
        return new JsonGrammar(options.Count == 1 ? options[0] : new AnyOfNode(options));
    }

    /// <summary>The state before any byte.</summary>
    public JsonGrammarState Start() => new([new Stack(new ValueFrame(Root), null)]);

    // ------------------------------------------------------------------ schema nodes

    internal abstract class Node;

    internal sealed class ObjectNode(IReadOnlyList<Property> properties) : Node
    {
        public IReadOnlyList<Property> Properties { get; } = properties;
    }

    internal sealed record Property(string Name, byte[] KeyBytes, Node Value, bool Required);

    internal sealed class ArrayNode(Node items, int min, int max) : Node
    {
        public Node Items { get; } = items;
        public int Min { get; } = min;
        public int Max { get; } = max;
    }

    internal sealed class StringNode(int min, int max) : Node
    {
        public int Min { get; } = min;
        public int Max { get; } = max;
    }

    internal sealed class NumberNode(bool integer) : Node
    {
        public bool Integer { get; } = integer;
    }

    /// <summary>Fixed JSON texts (enum, const, true, false, null), matched through a byte trie.</summary>
    internal sealed class LiteralNode(IEnumerable<byte[]> literals) : Node
    {
        public Trie Trie { get; } = Trie.Build(literals);
    }

    internal sealed class AnyOfNode(IReadOnlyList<Node> options) : Node
    {
        public IReadOnlyList<Node> Options { get; } = options;
    }

    /// <summary>A <c>$ref</c>, resolved on first use so that recursive definitions compile.</summary>
    internal sealed class RefNode(Func<Node> resolve) : Node
    {
        private Node? _target;
        public Node Target => _target ??= resolve();
    }

    /// <summary>Any JSON value (any object, when <c>objectOnly</c>), nesting at most <c>depth</c> levels.</summary>
    internal sealed class FreeNode(int depth, bool objectOnly = false) : Node
    {
        public int Depth { get; } = depth;
        public bool ObjectOnly { get; } = objectOnly;
    }

    internal sealed class Trie
    {
        public Dictionary<byte, Trie> Children { get; } = [];
        public bool Terminal { get; private set; }

        public static Trie Build(IEnumerable<byte[]> words)
        {
            var root = new Trie();
            foreach (var word in words)
            {
                var node = root;
                foreach (var b in word)
                    node = node.Children.TryGetValue(b, out var next) ? next : node.Children[b] = new Trie();
                node.Terminal = true;
            }
            return root;
        }
    }

    // ------------------------------------------------------------------ compiler

    private sealed class SchemaCompiler(JsonNode root)
    {
        private static readonly HashSet<string> Annotations = ["title", "description", "default", "examples", "$schema", "$id", "$comment", "strict"];
        private readonly Dictionary<string, Node> _refs = [];

        public Node Compile(JsonNode? schema, string path)
        {
            if (schema is JsonValue v && v.GetValueKind() == JsonValueKind.True)
                return new FreeNode(MaxFreeDepth);
            if (schema is not JsonObject s)
                throw new UnsupportedSchemaException(path, $"{path} must be a JSON Schema object.");

            foreach (var (key, _) in s)
                if (!Annotations.Contains(key) && key is not ("type" or "properties" or "required" or "additionalProperties" or "items" or "minItems" or "maxItems"
                        or "minLength" or "maxLength" or "enum" or "const" or "anyOf" or "$ref" or "$defs" or "definitions"))
                    throw new UnsupportedSchemaException($"{path}.{key}", $"The schema keyword '{key}' at {path} is not supported by constrained decoding here.");

            if (s["$ref"] is { } reference)
                return Ref(reference, $"{path}.$ref");
            if (s["const"] is { } constant)
                return new LiteralNode([Canonical(constant)]);
            if (s["enum"] is { } enumeration)
            {
                if (enumeration is not JsonArray { Count: > 0 } values)
                    throw new UnsupportedSchemaException($"{path}.enum", $"{path}.enum must be a non-empty array.");
                return new LiteralNode(values.Select(Canonical));
            }
            if (s["anyOf"] is { } anyOf)
            {
                if (anyOf is not JsonArray { Count: > 0 } options)
                    throw new UnsupportedSchemaException($"{path}.anyOf", $"{path}.anyOf must be a non-empty array.");
                return new AnyOfNode(options.Select((o, i) => Compile(o, $"{path}.anyOf[{i}]")).ToList());
            }

            var types = s["type"] switch
            {
                null => ["object", "array", "string", "number", "boolean", "null"],
                JsonValue t when t.GetValueKind() == JsonValueKind.String => [t.GetValue<string>()],
                JsonArray list when list.All(t => t?.GetValueKind() == JsonValueKind.String) => list.Select(t => t!.GetValue<string>()).ToList(),
                _ => throw new UnsupportedSchemaException($"{path}.type", $"{path}.type must be a type name or an array of them."),
            };
            if (s["type"] is null && !s.ContainsKey("properties") && !s.ContainsKey("items"))
                return new FreeNode(MaxFreeDepth);
            var nodes = types.Select(t => Typed(s, t, path)).ToList();
            return nodes.Count == 1 ? nodes[0] : new AnyOfNode(nodes);
        }

        private Node Typed(JsonObject s, string type, string path) => type switch
        {
            "object" => Object(s, path),
            "array" => new ArrayNode(s["items"] is { } items ? Compile(items, $"{path}.items") : new FreeNode(MaxFreeDepth),
                Count(s, "minItems", path) ?? 0, Count(s, "maxItems", path) ?? int.MaxValue),
            "string" => new StringNode(Count(s, "minLength", path) ?? 0, Count(s, "maxLength", path) ?? int.MaxValue),
            "number" => new NumberNode(integer: false),
            "integer" => new NumberNode(integer: true),
            "boolean" => new LiteralNode(["true"u8.ToArray(), "false"u8.ToArray()]),
            "null" => new LiteralNode(["null"u8.ToArray()]),
            _ => throw new UnsupportedSchemaException($"{path}.type", $"'{type}' at {path}.type is not a JSON Schema type."),
        };

        private Node Object(JsonObject s, string path)
        {
            var required = s["required"] switch
            {
                null => [],
                JsonArray names when names.All(n => n?.GetValueKind() == JsonValueKind.String) => names.Select(n => n!.GetValue<string>()).ToHashSet(),
                _ => throw new UnsupportedSchemaException($"{path}.required", $"{path}.required must be an array of property names."),
            };
            var properties = new List<Property>();
            if (s["properties"] is JsonObject props)
                foreach (var (name, schema) in props)
                    properties.Add(new Property(name, Encoding.UTF8.GetBytes(JsonSerializer.Serialize(name) + ":"), Compile(schema, $"{path}.properties.{name}"), required.Contains(name)));
            else if (s["properties"] is not null)
                throw new UnsupportedSchemaException($"{path}.properties", $"{path}.properties must be an object.");
            if (required.FirstOrDefault(r => properties.All(p => p.Name != r)) is { } missing)
                throw new UnsupportedSchemaException($"{path}.required", $"'{missing}' is required at {path} but not among its properties.");
            // Without declared properties, an object is free-form unless additionalProperties forbids any.
            if (properties.Count == 0 && s["additionalProperties"]?.GetValueKind() != JsonValueKind.False)
                return new FreeNode(MaxFreeDepth, objectOnly: true);
            return new ObjectNode(properties);
        }

        private static int? Count(JsonObject s, string name, string path)
        {
            if (s[name] is null)
                return null;
            return s[name] is JsonValue v && v.TryGetValue<int>(out var n) && n >= 0 ? n
                : throw new UnsupportedSchemaException($"{path}.{name}", $"{path}.{name} must be a non-negative integer.");
        }

        private Node Ref(JsonNode reference, string path)
        {
            var text = reference.GetValueKind() == JsonValueKind.String ? reference.GetValue<string>() : "";
            string[] parts = text.Split('/');
            if (parts is not ["#", "$defs" or "definitions", _])
                throw new UnsupportedSchemaException(path, $"$ref '{text}' at {path}: only '#/$defs/<name>' and '#/definitions/<name>' are supported.");
            if (_refs.TryGetValue(text, out var known))
                return known;
            var target = root[parts[1]]?[parts[2]] ?? throw new UnsupportedSchemaException(path, $"$ref '{text}' at {path} points at nothing.");
            var node = new RefNode(() => Compile(target, text));
            _refs[text] = node;
            return node;
        }

        private static byte[] Canonical(JsonNode? value) => Encoding.UTF8.GetBytes(value?.ToJsonString() ?? "null");
    }

    // ------------------------------------------------------------------ automaton

    /// <summary>An immutable stack of frames; <c>null</c> is the empty stack (the root value is complete).</summary>
    internal sealed class Stack(Frame top, Stack? below)
    {
        public Frame Top { get; } = top;
        public Stack? Below { get; } = below;
    }

    /// <summary>What one position of the stack still expects. Feeding a byte adds every stack that can follow to <c>output</c>.</summary>
    internal abstract class Frame
    {
        public abstract void Feed(byte b, Stack? below, List<Stack?> output);

        /// <summary>Whether this frame may end here and hand the next byte to the frame below (numbers, ambiguous literals).</summary>
        public virtual bool CanEnd => false;

        protected static void PopAndFeed(byte b, Stack? below, List<Stack?> output)
        {
            if (below is not null)
                below.Top.Feed(b, below.Below, output);
        }
    }

    /// <summary>The first byte of a value of <c>node</c>.</summary>
    internal sealed class ValueFrame(Node node) : Frame
    {
        public override void Feed(byte b, Stack? below, List<Stack?> output)
        {
            switch (node)
            {
                case RefNode r:
                    new ValueFrame(r.Target).Feed(b, below, output);
                    break;
                case AnyOfNode any:
                    foreach (var option in any.Options)
                        new ValueFrame(option).Feed(b, below, output);
                    break;
                case ObjectNode o when b == '{':
                    output.Add(new Stack(new ObjectFrame(o, 0, ObjectFrame.Phase.Open), below));
                    break;
                case ArrayNode a when b == '[':
                    output.Add(new Stack(new ArrayFrame(a, 0, ArrayFrame.Phase.Open), below));
                    break;
                case StringNode s when b == '"':
                    output.Add(new Stack(new StringFrame(s.Min, s.Max, 0, 0, 0), below));
                    break;
                case NumberNode n:
                    NumberFrame.Start(n.Integer, b, below, output);
                    break;
                case LiteralNode l:
                    new LiteralFrame(l.Trie).Feed(b, below, output);
                    break;
                case FreeNode f:
                    FreeFrame.Start(f, b, below, output);
                    break;
            }
        }
    }

    /// <summary>Inside an object of declared properties, emitted in order; optional ones may be skipped.</summary>
    internal sealed class ObjectFrame(ObjectNode node, int next, ObjectFrame.Phase phase) : Frame
    {
        public enum Phase { Open, AfterValue, AfterComma }

        private bool RestOptional => node.Properties.Skip(next).All(p => !p.Required);

        /// <summary>The properties that may come next: every optional one up to and including the next required one.</summary>
        private IEnumerable<int> Candidates()
        {
            for (var i = next; i < node.Properties.Count; i++)
            {
                yield return i;
                if (node.Properties[i].Required)
                    yield break;
            }
        }

        public override void Feed(byte b, Stack? below, List<Stack?> output)
        {
            switch (phase)
            {
                case Phase.Open or Phase.AfterValue when b == '}' && RestOptional:
                    output.Add(below);
                    break;
                case Phase.AfterValue when b == ',' && Candidates().Any():
                    output.Add(new Stack(new ObjectFrame(node, next, Phase.AfterComma), below));
                    break;
                case Phase.Open or Phase.AfterComma when b == '"':
                    foreach (var i in Candidates())
                        output.Add(new Stack(new KeyFrame(node, i, 1), below));
                    break;
            }
        }
    }

    /// <summary>The bytes of one property's <c>"name":</c> after position <c>at</c>; then its value.</summary>
    internal sealed class KeyFrame(ObjectNode node, int index, int at) : Frame
    {
        public override void Feed(byte b, Stack? below, List<Stack?> output)
        {
            var property = node.Properties[index];
            if (property.KeyBytes[at] != b)
                return;
            if (at + 1 < property.KeyBytes.Length)
                output.Add(new Stack(new KeyFrame(node, index, at + 1), below));
            else
                output.Add(new Stack(new ValueFrame(property.Value), new Stack(new ObjectFrame(node, index + 1, ObjectFrame.Phase.AfterValue), below)));
        }
    }

    internal sealed class ArrayFrame(ArrayNode node, int count, ArrayFrame.Phase phase) : Frame
    {
        public enum Phase { Open, AfterValue, AfterComma }

        public override void Feed(byte b, Stack? below, List<Stack?> output)
        {
            if (phase != Phase.AfterComma && b == ']' && count >= node.Min)
                output.Add(below);
            else if (phase == Phase.AfterValue && b == ',' && count < node.Max)
                output.Add(new Stack(new ArrayFrame(node, count, Phase.AfterComma), below));
            else if (phase != Phase.AfterValue && count < node.Max)
                new ValueFrame(node.Items).Feed(b, new Stack(new ArrayFrame(node, count + 1, Phase.AfterValue), below), output);
        }
    }

    /// <summary>
    /// Inside a string: characters counted for min/maxLength (UTF-16 units) (<c>length</c> so far), UTF-8 kept whole (<c>pending</c>
    /// continuation bytes still due), escapes checked (<c>escape</c>: 0 none, 1 after a backslash, 5-2 the hex digits of \u).
    /// </summary>
    internal sealed class StringFrame(int min, int max, int length, int pending, int escape, byte low = 0x80, byte high = 0xBF) : Frame
    {
        public override void Feed(byte b, Stack? below, List<Stack?> output)
        {
            if (pending > 0)
            {
                // Only well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF): the text decodes as written.
                if (b >= low && b <= high)
                    output.Add(new Stack(new StringFrame(min, max, length, pending - 1, 0), below));
                return;
            }
            if (escape == 1)
            {
                if (b is (byte)'"' or (byte)'\\' or (byte)'/' or (byte)'b' or (byte)'f' or (byte)'n' or (byte)'r' or (byte)'t')
                    output.Add(new Stack(new StringFrame(min, max, length + 1, 0, 0), below));
                else if (b == 'u')
                    output.Add(new Stack(new StringFrame(min, max, length, 0, 5), below));
                return;
            }
            if (escape >= 2)
            {
                var hex = b is (>= (byte)'0' and <= (byte)'9') or (>= (byte)'a' and <= (byte)'f') or (>= (byte)'A' and <= (byte)'F');
                // \uD800-\uDFFF are surrogate halves, which a lone escape cannot pair: not allowed.
                var surrogate = escape == 4 && _firstHexWasD && b is (>= (byte)'8' and <= (byte)'9') or (>= (byte)'a' and <= (byte)'f') or (>= (byte)'A' and <= (byte)'F');
                if (!hex || surrogate)
                    return;
                var nextFrame = escape == 2 ? new StringFrame(min, max, length + 1, 0, 0) : new StringFrame(min, max, length, 0, escape - 1) { _firstHexWasD = escape == 5 ? b is (byte)'d' or (byte)'D' : _firstHexWasD };
                output.Add(new Stack(nextFrame, below));
                return;
            }
            if (b == '"')
            {
                if (length >= min)
                    output.Add(below);
                return;
            }
            if (length >= max)
                return;
            StringFrame? next = b switch
            {
                (byte)'\\' => new(min, max, length, 0, 1),
                >= 0x20 and < 0x80 => new(min, max, length + 1, 0, 0),
                >= 0xC2 and <= 0xDF => new(min, max, length + 1, 1, 0),
                0xE0 => new(min, max, length + 1, 2, 0, 0xA0, 0xBF),
                0xED => new(min, max, length + 1, 2, 0, 0x80, 0x9F),
                >= 0xE1 and <= 0xEF => new(min, max, length + 1, 2, 0),
                // Beyond U+FFFF counts twice: as UTF-16 validators count it, so the output satisfies those and code-point ones alike.
                0xF0 when length + 2 <= max => new(min, max, length + 2, 3, 0, 0x90, 0xBF),
                >= 0xF1 and <= 0xF3 when length + 2 <= max => new(min, max, length + 2, 3, 0),
                0xF4 when length + 2 <= max => new(min, max, length + 2, 3, 0, 0x80, 0x8F),
                _ => null,
            };
            if (next is not null)
                output.Add(new Stack(next, below));
        }

        private bool _firstHexWasD;
    }

    /// <summary>A JSON number: <c>-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?</c>; integers stop before the fraction.</summary>
    internal sealed class NumberFrame(bool integer, NumberFrame.Part part, int digits) : Frame
    {
        public enum Part { Sign, Zero, Int, Dot, Frac, E, ESign, Exp }

        public override bool CanEnd => part is Part.Zero or Part.Int or Part.Frac or Part.Exp;

        public static void Start(bool integer, byte b, Stack? below, List<Stack?> output)
        {
            if (b == '-')
                output.Add(new Stack(new NumberFrame(integer, Part.Sign, 0), below));
            else if (b == '0')
                output.Add(new Stack(new NumberFrame(integer, Part.Zero, 1), below));
            else if (b is >= (byte)'1' and <= (byte)'9')
                output.Add(new Stack(new NumberFrame(integer, Part.Int, 1), below));
        }

        public override void Feed(byte b, Stack? below, List<Stack?> output)
        {
            var digit = b is >= (byte)'0' and <= (byte)'9';
            NumberFrame? next = (part, b) switch
            {
                (Part.Sign, (byte)'0') => new(integer, Part.Zero, 1),
                (Part.Sign, _) when digit => new(integer, Part.Int, 1),
                (Part.Int, _) when digit && digits < MaxIntegerDigits => new(integer, Part.Int, digits + 1),
                (Part.Zero or Part.Int, (byte)'.') when !integer => new(integer, Part.Dot, 0),
                (Part.Zero or Part.Int or Part.Frac, (byte)'e' or (byte)'E') when !integer => new(integer, Part.E, 0),
                (Part.Dot, _) when digit => new(integer, Part.Frac, 1),
                (Part.Frac, _) when digit && digits < MaxFractionDigits => new(integer, Part.Frac, digits + 1),
                (Part.E, (byte)'+' or (byte)'-') => new(integer, Part.ESign, 0),
                (Part.E or Part.ESign, _) when digit => new(integer, Part.Exp, 1),
                (Part.Exp, _) when digit && digits < MaxExponentDigits => new(integer, Part.Exp, digits + 1),
                _ => null,
            };
            if (next is not null)
                output.Add(new Stack(next, below));
            else if (CanEnd)
                PopAndFeed(b, below, output);
        }
    }

    internal sealed class LiteralFrame(Trie node) : Frame
    {
        public override bool CanEnd => node.Terminal;

        public override void Feed(byte b, Stack? below, List<Stack?> output)
        {
            if (node.Children.TryGetValue(b, out var child))
                output.Add(child.Terminal && child.Children.Count == 0 ? below : new Stack(new LiteralFrame(child), below));
            else if (node.Terminal)
                PopAndFeed(b, below, output);
        }
    }

    /// <summary>Free-form JSON (any object, array, string, number, literal) down to a depth limit.</summary>
    internal static class FreeFrame
    {
        private static readonly LiteralNode Literals = new(["true"u8.ToArray(), "false"u8.ToArray(), "null"u8.ToArray()]);

        public static void Start(FreeNode f, byte b, Stack? below, List<Stack?> output)
        {
            if (b == '{')
                output.Add(new Stack(new FreeObjectFrame(f.Depth - 1, FreeObjectFrame.Phase.Open), below));
            else if (f.ObjectOnly)
                return;
            else if (b == '[' && f.Depth > 1)
                output.Add(new Stack(new FreeArrayFrame(f.Depth - 1, FreeArrayFrame.Phase.Open), below));
            else if (b == '"')
                output.Add(new Stack(new StringFrame(0, int.MaxValue, 0, 0, 0), below));
            else if (b == '-' || b is >= (byte)'0' and <= (byte)'9')
                NumberFrame.Start(integer: false, b, below, output);
            else
                new LiteralFrame(Literals.Trie).Feed(b, below, output);
        }
    }

    internal sealed class FreeObjectFrame(int depth, FreeObjectFrame.Phase phase) : Frame
    {
        public enum Phase { Open, AfterKey, AfterValue, AfterComma }

        public override void Feed(byte b, Stack? below, List<Stack?> output)
        {
            switch (phase)
            {
                case Phase.Open or Phase.AfterValue when b == '}':
                    output.Add(below);
                    break;
                case Phase.AfterValue when b == ',':
                    output.Add(new Stack(new FreeObjectFrame(depth, Phase.AfterComma), below));
                    break;
                case Phase.Open or Phase.AfterComma when b == '"':
                    output.Add(new Stack(new StringFrame(0, int.MaxValue, 0, 0, 0), new Stack(new FreeObjectFrame(depth, Phase.AfterKey), below)));
                    break;
                case Phase.AfterKey when b == ':':
                    output.Add(new Stack(new ValueFrame(new FreeNode(depth)), new Stack(new FreeObjectFrame(depth, Phase.AfterValue), below)));
                    break;
            }
        }
    }

    internal sealed class FreeArrayFrame(int depth, FreeArrayFrame.Phase phase) : Frame
    {
        public enum Phase { Open, AfterValue, AfterComma }

        public override void Feed(byte b, Stack? below, List<Stack?> output)
        {
            if (phase != Phase.AfterComma && b == ']')
                output.Add(below);
            else if (phase == Phase.AfterValue && b == ',')
                output.Add(new Stack(new FreeArrayFrame(depth, Phase.AfterComma), below));
            else if (phase != Phase.AfterValue)
                FreeFrame.Start(new FreeNode(depth), b, new Stack(new FreeArrayFrame(depth, Phase.AfterValue), below), output);
        }
    }
}

/// <summary>Where the automaton is: every stack still possible (several while an anyOf is undecided).</summary>
public sealed class JsonGrammarState
{
    internal List<JsonGrammar.Stack?> Stacks { get; }

    internal JsonGrammarState(List<JsonGrammar.Stack?> stacks) => Stacks = stacks;

    /// <summary>The root value is complete: nothing more may follow.</summary>
    public bool IsComplete => Stacks.Contains(null);

    /// <summary>The state after <paramref name="bytes"/>, or null when the grammar does not allow them.</summary>
    public JsonGrammarState? Advance(ReadOnlySpan<byte> bytes)
    {
        var current = Stacks;
        foreach (var b in bytes)
        {
            var next = new List<JsonGrammar.Stack?>(current.Count);
            foreach (var stack in current)
                stack?.Top.Feed(b, stack.Below, next);
            if (next.Count == 0)
                return null;
            current = next;
        }
        return new JsonGrammarState(current);
    }
}

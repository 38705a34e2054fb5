// Over 400 lines on purpose: one reader of one external format (promptfoo configs), refusing every
// unsupported key by name; its parts share the file/line error reporting.
using System.Globalization;
using System.Text;
using System.Text.Json;
using AspireTune.Evaluation.Scoring;

namespace AspireTune.Cli.Promptfoo;

/// <summary>
/// Reads promptfoo's configuration format as it is, for the common subset: <c>prompts</c> (inline, <c>file://</c>
/// text or chat JSON), <c>providers</c>, <c>tests</c> (inline, <c>file://</c> JSONL, CSV, YAML, JSON),
/// <c>defaultTest</c>, <c>vars</c>, <c>evaluateOptions.repeat</c> and the assertions the Evaluation scorer
/// <c>assert</c> checks. Everything else is refused by name with its file and line, never silently ignored.
/// </summary>
public static class PromptfooReader
{
    private static readonly HashSet<string> TopLevel = ["description", "tags", "prompts", "providers", "tests", "defaultTest", "evaluateOptions", "outputPath", "sharing", "writeLatestResults"];
    private static readonly HashSet<string> TestKeys = ["description", "vars", "assert", "options", "metadata"];
    private static readonly HashSet<string> AssertKeys = ["type", "value", "threshold", "metric", "weight"];
    private static readonly HashSet<string> ProviderConfigKeys = ["apiBaseUrl", "apiKeyEnvar", "temperature", "max_tokens", "cost", "inputCost", "outputCost"];

    public static PromptfooSuite Read(string path)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full))
            throw new PromptfooConfigException(new SourceLocation(path, 0), "no such file.");
        var root = ConfigNode.FromYaml(path, File.ReadAllText(full));
        if (root.Map is null)
            throw new PromptfooConfigException(root.At, "the configuration must be a mapping (prompts, providers, tests, ...).");
        foreach (var (key, node) in root.Map)
            if (!TopLevel.Contains(key))
                throw new PromptfooConfigException(node.At, $"'{key}' is not supported by aspiretune eval (supported: {string.Join(", ", TopLevel)}).");

        var folder = Path.GetDirectoryName(full)!;
        var prompts = ReadPrompts(root["prompts"] ?? throw new PromptfooConfigException(root.At, "'prompts' is missing."), folder);
        var providers = ReadProviders(root["providers"] ?? throw new PromptfooConfigException(root.At, "'providers' is missing."));
        var defaults = root["defaultTest"] is { } d ? (d.Scalar is { } file ? LoadDefaultTest(file, d, folder) : d) : null;
        if (defaults is not null)
            CheckKeys(defaults, TestKeys, "defaultTest");
        var tests = ReadTests(root["tests"] ?? throw new PromptfooConfigException(root.At, "'tests' is missing."), folder, defaults);

        var repeat = 1;
        var concurrency = 4;
        if (root["evaluateOptions"] is { Map: not null } options)
            foreach (var (key, node) in options.Map)
            {
                if (key == "repeat")
                    repeat = (int)node.RequireNumber("evaluateOptions.repeat");
                else if (key == "maxConcurrency")
                    concurrency = Math.Clamp((int)node.RequireNumber("evaluateOptions.maxConcurrency"), 1, 1024);
                else if (key is not ("showProgressBar" or "cache"))
                    throw new PromptfooConfigException(node.At, $"evaluateOptions.{key} is not supported (supported: repeat, maxConcurrency, showProgressBar, cache).");
            }
        if (repeat is < 1 or > 100)
            throw new PromptfooConfigException(root["evaluateOptions"]!.At, "evaluateOptions.repeat must be between 1 and 100.");

        return new PromptfooSuite(path, root["description"]?.Scalar, prompts, providers, tests, repeat, ReadGrading(defaults?["options"]), root["outputPath"]?.Scalar, concurrency);
    }

    private static ConfigNode LoadDefaultTest(string reference, ConfigNode node, string folder)
    {
        var file = FileReference(reference, node, folder);
        var text = File.ReadAllText(file);
        return Path.GetExtension(file).ToLowerInvariant() == ".json"
            ? ConfigNode.FromJson(new SourceLocation(reference[7..], 1), JsonDocument.Parse(text).RootElement)
            : ConfigNode.FromYaml(reference[7..], text);
    }

    // ---- prompts ----

    private static List<PromptSpec> ReadPrompts(ConfigNode node, string folder)
    {
        var entries = node.Sequence ?? [node];
        var prompts = new List<PromptSpec>();
        foreach (var entry in entries)
        {
            if (entry.Map is not null)
            {
                CheckKeys(entry, ["raw", "id", "label"], "a prompt");
                var label = entry["label"]?.Scalar;
                var text = entry["raw"]?.Scalar ?? entry["id"]?.Scalar ?? throw new PromptfooConfigException(entry.At, "a prompt object needs 'raw' or 'id'.");
                prompts.AddRange(PromptsOf(text, label, entry, folder));
            }
            else
                prompts.AddRange(PromptsOf(entry.RequireText("a prompt"), null, entry, folder));
        }
        if (prompts.Count == 0)
            throw new PromptfooConfigException(node.At, "'prompts' is empty.");
        foreach (var p in prompts)
            if ((NunjucksTemplate.Check(p.User) ?? (p.System is null ? null : NunjucksTemplate.Check(p.System))) is { } problem)
                throw new PromptfooConfigException(p.At, $"prompt '{p.Label}': {problem}.");
        return prompts;
    }

    private static IEnumerable<PromptSpec> PromptsOf(string text, string? label, ConfigNode node, string folder)
    {
        if (!text.StartsWith("file://", StringComparison.Ordinal))
        {
            yield return new PromptSpec(label ?? Shorten(text), text, null, node.At);
            yield break;
        }
        var file = FileReference(text, node, folder);
        var name = Path.GetFileName(file);
        switch (Path.GetExtension(file).ToLowerInvariant())
        {
            case ".txt" or ".md" or ".prompt" or "":
                // promptfoo: a line of three dashes separates several prompts in one file.
                var parts = File.ReadAllText(file).ReplaceLineEndings("\n").Split("\n---\n").Select(p => p.Trim('\n')).Where(p => p.Length > 0).ToList();
                for (var i = 0; i < parts.Count; i++)
                    yield return new PromptSpec(label ?? (parts.Count == 1 ? name : $"{name}#{i + 1}"), parts[i], null, node.At);
                break;
            case ".json":
                yield return ChatPrompt(file, label ?? name, node);
                break;
            default:
                throw new PromptfooConfigException(node.At, $"prompt file '{name}': {Path.GetExtension(file)} prompts (code or other formats) are not supported; use .txt, .md or chat .json.");
        }
    }

    /// <summary>A chat prompt file: a JSON list of messages, at most one system message and then one user message.</summary>
    private static PromptSpec ChatPrompt(string file, string label, ConfigNode node)
    {
        List<Dictionary<string, string>>? messages;
        try
        {
            messages = JsonSerializer.Deserialize<List<Dictionary<string, string>>>(File.ReadAllText(file));
        }
        catch (JsonException e)
        {
            throw new PromptfooConfigException(node.At, $"chat prompt '{label}' is not a JSON list of {{role, content}} messages: {e.Message}");
        }
        var system = messages?.Where(m => m.GetValueOrDefault("role") == "system").Select(m => m.GetValueOrDefault("content")).ToList() ?? [];
        var user = messages?.Where(m => m.GetValueOrDefault("role") == "user").Select(m => m.GetValueOrDefault("content")).ToList() ?? [];
        if (messages is null || user.Count != 1 || system.Count > 1 || messages.Count != user.Count + system.Count)
            throw new PromptfooConfigException(node.At, $"chat prompt '{label}': only one optional system message and one user message can be mapped (no assistant turns).");
        if (system.Count == 1 && NunjucksTemplate.Variables(system[0] ?? "").Any())
            throw new PromptfooConfigException(node.At, $"chat prompt '{label}': variables in the system message are not supported; put them in the user message.");
        return new PromptSpec(label, user[0] ?? "", system.Count == 1 ? system[0] : null, node.At);
    }

    // ---- providers ----

    private static List<ProviderSpec> ReadProviders(ConfigNode node)
    {
        var entries = node.Sequence ?? [node];
        var providers = entries.Select(ReadProvider).ToList();
        if (providers.Count == 0)
            throw new PromptfooConfigException(node.At, "'providers' is empty.");
        foreach (var duplicate in providers.GroupBy(p => p.Label).Where(g => g.Count() > 1))
            throw new PromptfooConfigException(duplicate.Last().At, $"two providers are labelled '{duplicate.Key}'; give each a distinct 'label'.");
        return providers;
    }

    /// <summary>A provider given on the command line (e.g. <c>--grader</c>).</summary>
    public static ProviderSpec ReadProvider(string id) => ReadProvider(ConfigNode.Text(new SourceLocation("command line", 0), id));

    private static ProviderSpec ReadProvider(ConfigNode node)
    {
        string id;
        string? label = null;
        ConfigNode? config = null;
        if (node.Map is not null)
        {
            CheckKeys(node, ["id", "label", "config"], "a provider");
            id = node["id"]?.RequireText("the provider id") ?? throw new PromptfooConfigException(node.At, "a provider object needs an 'id'.");
            label = node["label"]?.Scalar;
            config = node["config"];
        }
        else
            id = node.RequireText("a provider");

        string model;
        var own = false;
        if (id.StartsWith("openai:chat:", StringComparison.Ordinal))
            model = id["openai:chat:".Length..];
        else if (id.StartsWith("openai:", StringComparison.Ordinal) && id.Count(c => c == ':') == 1)
            model = id["openai:".Length..];
        else if (id.StartsWith("aspiretune:", StringComparison.Ordinal))
        {
            model = id["aspiretune:".Length..];
            own = true;
        }
        else if (id.StartsWith("openai:embedding:", StringComparison.Ordinal) || id.StartsWith("openai:embeddings:", StringComparison.Ordinal))
            model = id[(id.IndexOf(':', 7) + 1)..];
        else
            throw new PromptfooConfigException(node.At, $"provider '{id}' is not supported; use openai:chat:MODEL (with apiBaseUrl for any OpenAI-compatible server) or aspiretune:MODEL.");
        if (model.Length == 0)
            throw new PromptfooConfigException(node.At, $"provider '{id}' names no model.");

        string? baseUrl = null, keyVariable = own ? null : "OPENAI_API_KEY";
        double? temperature = null;
        int? maxTokens = null;
        double input = 0, output = 0;
        foreach (var (key, value) in config?.Map ?? [])
        {
            switch (key)
            {
                case "apiBaseUrl":
                    baseUrl = NunjucksTemplate.Render(value.RequireText("apiBaseUrl"), new Dictionary<string, string>());
                    break;
                case "apiKeyEnvar":
                    keyVariable = value.RequireText("apiKeyEnvar");
                    break;
                case "temperature":
                    temperature = value.RequireNumber("temperature");
                    break;
                case "max_tokens":
                    maxTokens = (int)value.RequireNumber("max_tokens");
                    break;
                case "cost":
                    input = output = value.RequireNumber("cost") * 1_000_000;
                    break;
                case "inputCost":
                    input = value.RequireNumber("inputCost") * 1_000_000;
                    break;
                case "outputCost":
                    output = value.RequireNumber("outputCost") * 1_000_000;
                    break;
                case "apiKey":
                    throw new PromptfooConfigException(value.At, "'apiKey' in the file is refused: keys come from the environment; name the variable with apiKeyEnvar (default OPENAI_API_KEY).");
                default:
                    throw new PromptfooConfigException(value.At, $"provider config '{key}' is not supported (supported: {string.Join(", ", ProviderConfigKeys)}).");
            }
        }
        if (!own && baseUrl is null)
            baseUrl = Environment.GetEnvironmentVariable("OPENAI_BASE_URL") is { Length: > 0 } fromEnv ? fromEnv
                : Environment.GetEnvironmentVariable("OPENAI_API_BASE_URL") is { Length: > 0 } legacy ? legacy : "https://api.openai.com/v1";
        if (baseUrl is not null && (!Uri.TryCreate(baseUrl, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https")))
            throw new PromptfooConfigException(node.At, $"provider '{id}': apiBaseUrl '{baseUrl}' is not an absolute http(s) URL.");
        return new ProviderSpec(id, label ?? id, model, baseUrl, keyVariable, temperature, maxTokens, input, output, own, node.At);
    }

    private static GradingSpec ReadGrading(ConfigNode? options)
    {
        if (options is null)
            return new GradingSpec(null, null);
        CheckKeys(options, ["provider"], "defaultTest.options");
        if (options["provider"] is not { } provider)
            return new GradingSpec(null, null);
        if (provider.Map is not null && (provider["text"] is not null || provider["embedding"] is not null))
        {
            CheckKeys(provider, ["text", "embedding"], "defaultTest.options.provider");
            return new GradingSpec(provider["text"] is { } t ? ReadProvider(t) : null, provider["embedding"] is { } e ? ReadProvider(e) : null);
        }
        var one = ReadProvider(provider);
        return new GradingSpec(one, one);
    }

    // ---- tests ----

    private static List<TestSpec> ReadTests(ConfigNode node, string folder, ConfigNode? defaults)
    {
        var raw = new List<ConfigNode>();
        foreach (var entry in node.Sequence ?? [node])
        {
            if (entry.Scalar is { } reference)
                raw.AddRange(LoadTests(reference, entry, folder));
            else if (entry.Map is not null)
                raw.Add(entry);
            else
                throw new PromptfooConfigException(entry.At, "a test must be a mapping (vars, assert, ...) or a file:// reference.");
        }

        var defaultVars = defaults?["vars"] is { } dv ? ReadVars(dv, folder) : [];
        var defaultAsserts = defaults?["assert"] is { } da ? ReadAsserts(da) : [];
        var tests = new List<TestSpec>();
        foreach (var test in raw)
        {
            CheckKeys(test, TestKeys, "a test");
            if (test["options"] is { } options)
                throw new PromptfooConfigException(options.At, "per-test 'options' are not supported; set the grading provider in defaultTest.options.provider.");
            var vars = new Dictionary<string, List<string>>(defaultVars.ToDictionary(p => p.Key, p => p.Value), StringComparer.Ordinal);
            foreach (var (key, values) in test["vars"] is { } v ? ReadVars(v, folder) : [])
                vars[key] = values;
            var asserts = defaultAsserts.Concat(test["assert"] is { } a ? ReadAsserts(a) : []).ToList();
            // promptfoo: a variable holding a list runs the test once per value (every combination of such lists).
            foreach (var combination in Combinations(vars))
                tests.Add(new TestSpec(tests.Count, test["description"]?.Scalar, combination, asserts, test.At));
        }
        if (tests.Count == 0)
            throw new PromptfooConfigException(node.At, "there are no tests.");
        return tests;
    }

    private static IEnumerable<Dictionary<string, string>> Combinations(Dictionary<string, List<string>> vars)
    {
        IEnumerable<Dictionary<string, string>> result = [new Dictionary<string, string>(StringComparer.Ordinal)];
        foreach (var (key, values) in vars)
            result = result.SelectMany(partial => values.Select(value => new Dictionary<string, string>(partial, StringComparer.Ordinal) { [key] = value })).ToList();
        return result;
    }

    private static Dictionary<string, List<string>> ReadVars(ConfigNode node, string folder)
    {
        if (node.Map is null)
            throw new PromptfooConfigException(node.At, "'vars' must be a mapping of names to values.");
        var vars = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var (key, value) in node.Map)
        {
            if (value.Map is not null)
                throw new PromptfooConfigException(value.At, $"variable '{key}': objects are not supported (text, numbers or a list of them).");
            vars[key] = (value.Sequence ?? [value]).Select(v => VarValue(key, v, folder)).ToList();
        }
        return vars;
    }

    private static string VarValue(string name, ConfigNode value, string folder)
    {
        if (value.Map is not null || value.Sequence is not null)
            throw new PromptfooConfigException(value.At, $"variable '{name}': nested lists and objects are not supported.");
        var text = value.Scalar ?? "";
        if (!text.StartsWith("file://", StringComparison.Ordinal))
            return text;
        var file = FileReference(text, value, folder);
        return Path.GetExtension(file).ToLowerInvariant() is ".txt" or ".md" or ".json" or ".yaml" or ".yml" or ""
            ? File.ReadAllText(file)
            : throw new PromptfooConfigException(value.At, $"variable '{name}': {Path.GetExtension(file)} files (code, images) are not supported as values.");
    }

    private static List<AssertionSpec> ReadAsserts(ConfigNode node)
    {
        if (node.Sequence is null)
            throw new PromptfooConfigException(node.At, "'assert' must be a list of assertions.");
        var asserts = new List<AssertionSpec>();
        foreach (var a in node.Sequence)
        {
            CheckKeys(a, AssertKeys, "an assertion");
            var type = a["type"]?.RequireText("the assertion type") ?? throw new PromptfooConfigException(a.At, "an assertion needs a 'type'.");
            if (a["weight"] is { } weight && weight.RequireNumber("weight") != 1)
                throw new PromptfooConfigException(weight.At, "assertion weights are not supported (every assertion must pass).");
            asserts.Add(Assertion(type, a["value"] is { IsNull: false } v ? v.ToJson() : null, a["threshold"]?.RequireNumber("threshold"), a.At, a["value"]?.At ?? a.At));
        }
        return asserts;
    }

    /// <summary>Checks a type against what the scorer can do; code assertions are refused by name.</summary>
    private static AssertionSpec Assertion(string type, JsonElement? value, double? threshold, SourceLocation at, SourceLocation valueAt)
    {
        var bare = type.StartsWith("not-", StringComparison.Ordinal) ? type[4..] : type;
        if (bare is "javascript" or "python" or "webhook")
            throw new PromptfooConfigException(at, $"'{type}' assertions run code and are not supported by aspiretune eval; express the check with equals, contains, regex, is-json, similar or llm-rubric.");
        if (AssertionScorer.Refuse(type) is { } problem)
            throw new PromptfooConfigException(at, problem + ".");
        var needsValue = bare is not ("is-json" or "contains-json" or "latency" or "cost");
        if (needsValue && value is null)
            throw new PromptfooConfigException(at, $"'{type}' needs a 'value'.");
        if (bare is "latency" or "cost" && threshold is null)
            throw new PromptfooConfigException(at, $"'{type}' needs a 'threshold' ({(bare == "latency" ? "milliseconds" : "USD per call")}).");
        if (value is { ValueKind: JsonValueKind.String } text && NunjucksTemplate.Check(text.GetString()!) is { } template)
            throw new PromptfooConfigException(valueAt, $"assertion value: {template}.");
        return new AssertionSpec(type, value, threshold, at);
    }

    private static IEnumerable<ConfigNode> LoadTests(string reference, ConfigNode node, string folder)
    {
        var file = FileReference(reference, node, folder);
        var shown = reference[7..];
        var text = File.ReadAllText(file);
        switch (Path.GetExtension(file).ToLowerInvariant())
        {
            case ".jsonl":
                var line = 0;
                foreach (var raw in text.ReplaceLineEndings("\n").Split('\n'))
                {
                    line++;
                    if (raw.Trim().Length == 0)
                        continue;
                    JsonElement element;
                    try
                    {
                        element = JsonDocument.Parse(raw).RootElement.Clone();
                    }
                    catch (JsonException e)
                    {
                        throw new PromptfooConfigException(new SourceLocation(shown, line), $"not valid JSON: {e.Message}");
                    }
                    if (element.ValueKind != JsonValueKind.Object)
                        throw new PromptfooConfigException(new SourceLocation(shown, line), "each line must be a JSON object (a test: vars, assert, description).");
                    yield return ConfigNode.FromJson(new SourceLocation(shown, line), element);
                }
                break;
            case ".json":
                var json = JsonDocument.Parse(text).RootElement;
                foreach (var item in json.ValueKind == JsonValueKind.Array ? json.EnumerateArray().ToList() : [json])
                    yield return ConfigNode.FromJson(new SourceLocation(shown, 1), item);
                break;
            case ".yaml" or ".yml":
                var yaml = ConfigNode.FromYaml(shown, text);
                foreach (var item in yaml.Sequence ?? [yaml])
                    yield return item;
                break;
            case ".csv":
                foreach (var test in CsvTests(shown, text))
                    yield return test;
                break;
            default:
                throw new PromptfooConfigException(node.At, $"test file '{shown}': {Path.GetExtension(file)} is not supported (JSONL, CSV, YAML or JSON; no scripts).");
        }
    }

    /// <summary>
    /// promptfoo's CSV tests: every column a variable except <c>__expected</c> (also <c>__expected1</c>, ...): an
    /// assertion written <c>type: value</c> (no type: equals) and <c>__description</c>.
    /// </summary>
    private static IEnumerable<ConfigNode> CsvTests(string file, string text)
    {
        var rows = Csv.Parse(text);
        if (rows.Count == 0)
            yield break;
        var header = rows[0].Fields;
        foreach (var column in header.Where(h => h.StartsWith("__", StringComparison.Ordinal) && !h.StartsWith("__expected", StringComparison.Ordinal) && h != "__description"))
            throw new PromptfooConfigException(new SourceLocation(file, 1), $"CSV column '{column}' is not supported (variables, __expected, __description).");
        foreach (var (line, fields) in rows.Skip(1))
        {
            var at = new SourceLocation(file, line);
            var vars = new List<KeyValuePair<string, ConfigNode>>();
            var asserts = new List<ConfigNode>();
            string? description = null;
            for (var i = 0; i < header.Count; i++)
            {
                var value = i < fields.Count ? fields[i] : "";
                if (header[i] == "__description")
                    description = value;
                else if (header[i].StartsWith("__expected", StringComparison.Ordinal))
                {
                    if (value.Length > 0)
                        asserts.Add(CsvAssertion(at, value));
                }
                else
                    vars.Add(new(header[i], ConfigNode.Text(at, value)));
            }
            var test = new List<KeyValuePair<string, ConfigNode>> { new("vars", ConfigNode.Mapping(at, vars)), new("assert", ConfigNode.List(at, asserts)) };
            if (description is not null)
                test.Add(new("description", ConfigNode.Text(at, description)));
            yield return ConfigNode.Mapping(at, test);
        }
    }

    private static ConfigNode CsvAssertion(SourceLocation at, string text)
    {
        var colon = text.IndexOf(':');
        var head = colon > 0 ? text[..colon].Trim() : "";
        var rest = colon > 0 ? text[(colon + 1)..].Trim() : text;
        string type;
        double? threshold = null;
        if (head.StartsWith("similar", StringComparison.Ordinal) && head.Contains('('))
        {
            type = "similar";
            threshold = double.Parse(head[(head.IndexOf('(') + 1)..head.IndexOf(')')], CultureInfo.InvariantCulture);
        }
        else if (head == "grade")
            type = "llm-rubric";
        else if (head.Length > 0 && (AssertionScorer.Refuse(head) is null || head is "javascript" or "python" or "fn" or "eval"))
            type = head is "fn" or "eval" ? "javascript" : head;
        else
            (type, rest) = ("equals", text);
        var pairs = new List<KeyValuePair<string, ConfigNode>> { new("type", ConfigNode.Text(at, type)), new("value", ConfigNode.Text(at, rest)) };
        if (threshold is not null)
            pairs.Add(new("threshold", ConfigNode.FromJson(at, JsonSerializer.SerializeToElement(threshold.Value))));
        return ConfigNode.Mapping(at, pairs);
    }

    // ---- shared ----

    private static string FileReference(string reference, ConfigNode node, string folder)
    {
        if (!reference.StartsWith("file://", StringComparison.Ordinal))
            throw new PromptfooConfigException(node.At, $"'{reference}' is not a file:// reference.");
        var relative = reference[7..];
        if (relative.IndexOfAny(['*', '?', '[']) >= 0)
            throw new PromptfooConfigException(node.At, $"'{reference}': glob patterns are not supported; name each file.");
        if (relative.Contains(':') && !Path.IsPathRooted(relative))
            throw new PromptfooConfigException(node.At, $"'{reference}': function references (file.js:name) are not supported.");
        var file = Path.GetFullPath(Path.Combine(folder, relative));
        if (!File.Exists(file))
            throw new PromptfooConfigException(node.At, $"'{reference}': no such file ({file}).");
        return file;
    }

    private static void CheckKeys(ConfigNode node, IReadOnlyCollection<string> allowed, string what)
    {
        if (node.Map is null)
            throw new PromptfooConfigException(node.At, $"{what} must be a mapping.");
        foreach (var (key, value) in node.Map)
            if (!allowed.Contains(key))
                throw new PromptfooConfigException(value.At, $"'{key}' in {what} is not supported (supported: {string.Join(", ", allowed)}).");
    }

    private static string Shorten(string text)
    {
        var flat = text.ReplaceLineEndings(" ").Trim();
        return flat.Length <= 40 ? flat : flat[..40] + "...";
    }

    /// <summary>RFC 4180 CSV: quoted fields may hold commas, quotes ("") and line breaks; each row keeps its first line.</summary>
    private static class Csv
    {
        public static List<(int Line, List<string> Fields)> Parse(string text)
        {
            var rows = new List<(int, List<string>)>();
            var fields = new List<string>();
            var field = new StringBuilder();
            var quoted = false;
            var line = 1;
            var rowLine = 1;
            for (var i = 0; i < text.Length; i++)
            {
                var c = text[i];
                if (quoted)
                {
                    if (c == '"' && i + 1 < text.Length && text[i + 1] == '"')
                    {
                        field.Append('"');
                        i++;
                    }
                    else if (c == '"')
                        quoted = false;
                    else
                    {
                        if (c == '\n')
                            line++;
                        field.Append(c);
                    }
                }
                else if (c == '"' && field.Length == 0)
                    quoted = true;
                else if (c == ',')
                {
                    fields.Add(field.ToString());
                    field.Clear();
                }
                else if (c is '\n' or '\r')
                {
                    if (c == '\r' && i + 1 < text.Length && text[i + 1] == '\n')
                        i++;
                    fields.Add(field.ToString());
                    field.Clear();
                    if (fields.Count > 1 || fields[0].Length > 0)
                        rows.Add((rowLine, fields));
                    fields = [];
                    line++;
                    rowLine = line;
                }
                else
                    field.Append(c);
            }
            fields.Add(field.ToString());
            if (fields.Count > 1 || fields[0].Length > 0)
                rows.Add((rowLine, fields));
            return rows;
        }
    }
}

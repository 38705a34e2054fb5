using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace AspireTune.Engine.Models;

/// <summary>The decoder families the engine implements.</summary>
public enum ModelArchitecture
{
    /// <summary>GPT-2: learned positions, LayerNorm, GELU-tanh, Conv1D weights stored [in, out], tied head.</summary>
    Gpt2,
    /// <summary>Llama family (Llama, Qwen2, SmolLM, Mistral shapes): RMSNorm, RoPE, SwiGLU, grouped-query attention.</summary>
    Llama,
}

/// <summary>Llama 3 style RoPE frequency scaling (<c>rope_scaling.rope_type == "llama3"</c>).</summary>
public sealed record RopeScaling(double Factor, double LowFreqFactor, double HighFreqFactor, int OriginalMaxPositionEmbeddings);

/// <summary>
/// The shape of a decoder, read from and written to a Hugging Face <c>config.json</c>
/// (transformers 4.x and 5.x spellings both accepted).
/// </summary>
public sealed record ModelConfig
{
    public required ModelArchitecture Architecture { get; init; }

    /// <summary>The <c>model_type</c> written back to config.json: gpt2, llama, qwen2, mistral.</summary>
    public required string ModelType { get; init; }

    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }

    /// <summary>Key/value heads for grouped-query attention; equals <see cref="NumHeads"/> for GPT-2.</summary>
    public int NumKeyValueHeads { get; init; }

    /// <summary>MLP inner size (GPT-2 <c>n_inner</c>, default 4 x hidden).</summary>
    public required int IntermediateSize { get; init; }

    /// <summary>
    /// Longest sequence the model accepts (GPT-2 <c>n_positions</c>, Llama <c>max_position_embeddings</c>), cut to
    /// <see cref="SlidingWindow"/> where the config has one.
    /// </summary>
    public required int MaxPositions { get; init; }

    /// <summary>
    /// The attention window of a sliding-window config (Mistral's <c>sliding_window</c>, 4096 when the key is absent as
    /// transformers defaults it; Qwen2's with <c>use_sliding_window</c>). The engine attends to every position, which is
    /// the same computation up to the window, so <see cref="MaxPositions"/> is cut to it; null without one.
    /// </summary>
    public int? SlidingWindow { get; init; }

    /// <summary>Per-head size; Llama configs may set <c>head_dim</c> apart from hidden / heads.</summary>
    public int HeadDim { get; init; }

    /// <summary>LayerNorm / RMSNorm epsilon.</summary>
    public double NormEpsilon { get; init; } = 1e-5;

    public double RopeTheta { get; init; } = 10000.0;
    public RopeScaling? RopeScaling { get; init; }

    /// <summary>Bias on q/k/v projections (true for Qwen2, always for GPT-2).</summary>
    public bool AttentionBias { get; init; }

    /// <summary>Bias on the attention output projection (Llama <c>attention_bias</c> covers it; Qwen2 has none).</summary>
    public bool OutputBias { get; init; }

    public bool MlpBias { get; init; }
    public bool TieWordEmbeddings { get; init; }
    public int? BosTokenId { get; init; }
    public int? EosTokenId { get; init; }

    /// <summary>
    /// Every id config.json's <c>eos_token_id</c> names: Llama 3.1/3.2 Instruct list three ([end_of_text, eom, eot]),
    /// written back as the list; <see cref="EosTokenId"/> is the first. Empty when config.json names one id or none.
    /// </summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];

    public int? PadTokenId { get; init; }

    /// <summary>Dropout after the embeddings (GPT-2 <c>embd_pdrop</c>).</summary>
    public double EmbeddingDropout { get; init; }

    /// <summary>Dropout on attention probabilities (<c>attn_pdrop</c> / <c>attention_dropout</c>).</summary>
    public double AttentionDropout { get; init; }

    /// <summary>Dropout on each residual branch (GPT-2 <c>resid_pdrop</c>).</summary>
    public double ResidualDropout { get; init; }

    /// <summary>The config.json as read, so that keys the engine does not use are written back unchanged.</summary>
    public JsonObject? Raw { get; init; }

    public int KvHeads => NumKeyValueHeads > 0 ? NumKeyValueHeads : NumHeads;
    public int HeadSize => HeadDim > 0 ? HeadDim : HiddenSize / NumHeads;

    /// <summary>A GPT-2 shape; <see cref="Gpt2Small"/> is the 124M model.</summary>
    public static ModelConfig Gpt2(int vocabSize, int hidden, int layers, int heads, int maxPositions, double dropout = 0.1) => new()
    {
        Architecture = ModelArchitecture.Gpt2, ModelType = "gpt2", VocabSize = vocabSize, HiddenSize = hidden,
        NumLayers = layers, NumHeads = heads, NumKeyValueHeads = heads, IntermediateSize = 4 * hidden,
        MaxPositions = maxPositions, NormEpsilon = 1e-5, AttentionBias = true, OutputBias = true, MlpBias = true,
        TieWordEmbeddings = true, BosTokenId = vocabSize - 1, EosTokenId = vocabSize - 1,
        EmbeddingDropout = dropout, AttentionDropout = dropout, ResidualDropout = dropout,
    };

    public static ModelConfig Gpt2Small => Gpt2(50257, 768, 12, 12, 1024);

    /// <summary>A Llama shape (set <paramref name="qkvBias"/> for Qwen2).</summary>
    public static ModelConfig Llama(int vocabSize, int hidden, int layers, int heads, int kvHeads, int intermediate,
        int maxPositions, bool qkvBias = false, bool tie = true) => new()
    {
        Architecture = ModelArchitecture.Llama, ModelType = qkvBias ? "qwen2" : "llama", VocabSize = vocabSize,
        HiddenSize = hidden, NumLayers = layers, NumHeads = heads, NumKeyValueHeads = kvHeads,
        IntermediateSize = intermediate, MaxPositions = maxPositions, NormEpsilon = 1e-6, AttentionBias = qkvBias,
        TieWordEmbeddings = tie, BosTokenId = 0, EosTokenId = 0,
    };

    /// <summary>Reads <c>config.json</c>; throws <see cref="ModelFormatException"/> naming the file and key.</summary>
    public static ModelConfig Load(string path)
    {
        if (!File.Exists(path))
            throw new ModelFormatException($"{path}: config.json not found", path);
        JsonObject root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                ?? throw new ModelFormatException($"{path}: config.json is not a JSON object", path);
        }
        catch (JsonException e)
        {
            throw new ModelFormatException($"{path}: config.json is not valid JSON ({e.Message})", path, inner: e);
        }
        return Parse(root, path);
    }

    public static ModelConfig Parse(JsonObject root, string source = "config.json")
    {
        var type = root["model_type"]?.GetValue<string>()
            ?? throw new ModelFormatException($"{source}: 'model_type' is missing", source);
        // GPTQ, AWQ, bitsandbytes, FP8: packed integer weights with scales the engine has no kernels for.
        if (root["quantization_config"] is JsonObject quantization)
            throw new ModelFormatException(
                $"{source}: 'quantization_config' (quant_method {quantization["quant_method"]?.ToString() ?? "unknown"}) is not supported: import the unquantized checkpoint (F32, F16 or BF16 safetensors)", source);
        int Req(params string[] keys)
        {
            foreach (var k in keys)
                if (root[k] is JsonValue v) return v.GetValue<int>();
            throw new ModelFormatException($"{source}: '{keys[0]}' is missing (model_type {type})", source);
        }
        int? Opt(string key) => root[key] switch
        {
            JsonValue v when v.TryGetValue<int>(out var i) => i,
            JsonArray a when a.Count > 0 => a[0]!.GetValue<int>(),
            _ => null,
        };
        List<int> Ids(string key) => root[key] is JsonArray a ? [.. a.Select((x, i) => x is JsonValue v && v.TryGetValue<int>(out var id) ? id
            : throw new ModelFormatException($"{source}: '{key}'[{i}] is not an integer token id", source))] : [];
        double D(string key, double fallback) => root[key] is JsonValue v ? v.GetValue<double>() : fallback;
        bool B(string key, bool fallback) => root[key] is JsonValue v ? v.GetValue<bool>() : fallback;

        switch (type)
        {
            case "gpt2":
            {
                var hidden = Req("n_embd", "hidden_size");
                var act = root["activation_function"]?.GetValue<string>() ?? "gelu_new";
                if (act is not ("gelu_new" or "gelu_pytorch_tanh"))
                    throw new ModelFormatException($"{source}: activation_function '{act}' is not supported (gelu_new only)", source);
                return new ModelConfig
                {
                    Architecture = ModelArchitecture.Gpt2, ModelType = type, Raw = root,
                    VocabSize = Req("vocab_size"), HiddenSize = hidden, NumLayers = Req("n_layer", "num_hidden_layers"),
                    NumHeads = Req("n_head", "num_attention_heads"), NumKeyValueHeads = Req("n_head", "num_attention_heads"),
                    IntermediateSize = Opt("n_inner") ?? 4 * hidden, MaxPositions = Req("n_positions", "max_position_embeddings"),
                    NormEpsilon = D("layer_norm_epsilon", 1e-5), AttentionBias = true, OutputBias = true, MlpBias = true,
                    TieWordEmbeddings = B("tie_word_embeddings", true), BosTokenId = Opt("bos_token_id"),
                    EosTokenId = Opt("eos_token_id"), EosTokenIds = Ids("eos_token_id"), PadTokenId = Opt("pad_token_id"),
                    EmbeddingDropout = D("embd_pdrop", 0.1), AttentionDropout = D("attn_pdrop", 0.1), ResidualDropout = D("resid_pdrop", 0.1),
                };
            }
            case "llama" or "qwen2" or "mistral":
            {
                var act = root["hidden_act"]?.GetValue<string>() ?? "silu";
                if (act != "silu")
                    throw new ModelFormatException($"{source}: hidden_act '{act}' is not supported (silu only)", source);
                // transformers 5 moves rope_theta and rope_scaling into rope_parameters.
                var rope = root["rope_parameters"] as JsonObject;
                var scaling = rope ?? root["rope_scaling"] as JsonObject;
                var ropeType = scaling?["rope_type"]?.GetValue<string>() ?? scaling?["type"]?.GetValue<string>() ?? "default";
                RopeScaling? rs = null;
                if (ropeType == "llama3")
                {
                    rs = new RopeScaling(scaling!["factor"]!.GetValue<double>(), scaling["low_freq_factor"]!.GetValue<double>(),
                        scaling["high_freq_factor"]!.GetValue<double>(), scaling["original_max_position_embeddings"]!.GetValue<int>());
                }
                else if (ropeType != "default")
                {
                    throw new ModelFormatException($"{source}: '{(rope is null ? "rope_scaling" : "rope_parameters")}' rope_type '{ropeType}' is not supported (default, llama3)", source);
                }
                var theta = rope?["rope_theta"] is JsonValue rt ? rt.GetValue<double>() : D("rope_theta", 10000.0);
                var heads = Req("num_attention_heads");
                var attnBias = B("attention_bias", false);
                int? window = root.ContainsKey("sliding_window") ? Opt("sliding_window") : type == "mistral" ? 4096 : null;
                if (type != "mistral" && !B("use_sliding_window", false)) window = null;
                var positions = Req("max_position_embeddings");
                return new ModelConfig
                {
                    Architecture = ModelArchitecture.Llama, ModelType = type, Raw = root,
                    VocabSize = Req("vocab_size"), HiddenSize = Req("hidden_size"), NumLayers = Req("num_hidden_layers"),
                    NumHeads = heads, NumKeyValueHeads = Opt("num_key_value_heads") ?? heads,
                    IntermediateSize = Req("intermediate_size"), MaxPositions = window is { } w && w < positions ? w : positions,
                    SlidingWindow = window < positions ? window : null,
                    HeadDim = Opt("head_dim") ?? 0, NormEpsilon = D("rms_norm_eps", 1e-6), RopeTheta = theta, RopeScaling = rs,
                    // Qwen2 always has q/k/v bias and no o_proj bias; Llama's attention_bias covers all four.
                    AttentionBias = type == "qwen2" || attnBias, OutputBias = type != "qwen2" && attnBias,
                    MlpBias = B("mlp_bias", false), TieWordEmbeddings = B("tie_word_embeddings", false),
                    BosTokenId = Opt("bos_token_id"), EosTokenId = Opt("eos_token_id"), EosTokenIds = Ids("eos_token_id"),
                    PadTokenId = Opt("pad_token_id"), AttentionDropout = D("attention_dropout", 0.0),
                };
            }
            default:
                throw new ModelFormatException(
                    $"{source}: model_type '{type}' is not supported (supported: gpt2, llama, qwen2, mistral)", source);
        }
    }

    /// <summary>
    /// Writes a config.json that transformers loads; keys read from the original file are kept. <paramref name="dtype"/>
    /// is what the weights beside it are stored as (<c>torch_dtype</c>, or transformers 5's <c>dtype</c> where the file used it).
    /// </summary>
    public JsonObject ToJson(string dtype = "float32")
    {
        var o = Raw is null ? new JsonObject() : (JsonObject)Raw.DeepClone();
        o["model_type"] = ModelType;
        o["vocab_size"] = VocabSize;
        if (BosTokenId is { } bos) o["bos_token_id"] = bos;
        if (EosTokenIds.Count > 0) o["eos_token_id"] = new JsonArray([.. EosTokenIds.Select(id => (JsonNode)id)]);
        else if (EosTokenId is { } eos) o["eos_token_id"] = eos;
        if (PadTokenId is { } pad) o["pad_token_id"] = pad;
        o["tie_word_embeddings"] = TieWordEmbeddings;
        o[o.ContainsKey("dtype") && !o.ContainsKey("torch_dtype") ? "dtype" : "torch_dtype"] = dtype;
        if (Architecture == ModelArchitecture.Gpt2)
        {
            o["architectures"] ??= new JsonArray("GPT2LMHeadModel");
            o["n_embd"] = HiddenSize; o["n_layer"] = NumLayers; o["n_head"] = NumHeads; o["n_positions"] = MaxPositions;
            o["n_ctx"] ??= MaxPositions;
            o["n_inner"] = IntermediateSize == 4 * HiddenSize ? null : IntermediateSize;
            Number(o, "layer_norm_epsilon", NormEpsilon); o["activation_function"] ??= "gelu_new";
            Number(o, "embd_pdrop", EmbeddingDropout); Number(o, "attn_pdrop", AttentionDropout); Number(o, "resid_pdrop", ResidualDropout);
        }
        else
        {
            var arch = ModelType switch { "qwen2" => "Qwen2ForCausalLM", "mistral" => "MistralForCausalLM", _ => "LlamaForCausalLM" };
            o["architectures"] ??= new JsonArray(arch);
            o["hidden_size"] = HiddenSize; o["num_hidden_layers"] = NumLayers; o["num_attention_heads"] = NumHeads;
            o["num_key_value_heads"] = KvHeads; o["intermediate_size"] = IntermediateSize;
            // A context cut to the sliding window keeps the file's max_position_embeddings: the model's, not the engine's limit.
            if (SlidingWindow is null || o["max_position_embeddings"] is null) o["max_position_embeddings"] = MaxPositions;
            Number(o, "rms_norm_eps", NormEpsilon); o["hidden_act"] = "silu";
            if (HeadDim > 0) o["head_dim"] = HeadDim;
            if (ModelType != "qwen2") o["attention_bias"] = AttentionBias;
            o["mlp_bias"] = MlpBias; Number(o, "attention_dropout", AttentionDropout);
            if (o["rope_parameters"] is JsonObject rp)
            {
                Number(rp, "rope_theta", RopeTheta);
            }
            else
            {
                Number(o, "rope_theta", RopeTheta);
                if (RopeScaling is { } s && !(o["rope_scaling"] is JsonObject read && SameScaling(read, s)))
                    o["rope_scaling"] = new JsonObject
                    {
                        ["rope_type"] = "llama3", ["factor"] = s.Factor, ["low_freq_factor"] = s.LowFreqFactor,
                        ["high_freq_factor"] = s.HighFreqFactor, ["original_max_position_embeddings"] = s.OriginalMaxPositionEmbeddings,
                    };
            }
        }
        return o;
    }

    /// <summary>Sets a number unless the file already holds it, so 10000.0 stays 10000.0 rather than becoming 10000.</summary>
    private static void Number(JsonObject o, string key, double value)
    {
        if (o[key] is JsonValue v && v.TryGetValue<double>(out var read) && read == value) return;
        o[key] = value;
    }

    private static bool SameScaling(JsonObject read, RopeScaling s) =>
        (read["rope_type"] ?? read["type"])?.GetValue<string>() == "llama3" && Num(read, "factor") == s.Factor
        && Num(read, "low_freq_factor") == s.LowFreqFactor && Num(read, "high_freq_factor") == s.HighFreqFactor
        && Num(read, "original_max_position_embeddings") == s.OriginalMaxPositionEmbeddings;

    private static double? Num(JsonObject o, string key) => o[key] is JsonValue v && v.TryGetValue<double>(out var d) ? d : null;

    public void Save(string path, string dtype = "float32") =>
        File.WriteAllText(path, ToJson(dtype).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{ModelType} d={HiddenSize} L={NumLayers} H={NumHeads}/{KvHeads} ff={IntermediateSize} V={VocabSize} ctx={MaxPositions}");
}

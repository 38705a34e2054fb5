using System.Text.Json.Nodes;
using AspireTune.Engine.Checkpoints;
using AspireTune.Engine.Models;
using AspireTune.TestSupport;

namespace AspireTune.FineTuning.Tests;

/// <summary>
/// Tiny checkpoints laid out file for file as Hugging Face publishes two families users bring: the metadata of the
/// published config.json, generation_config.json and tokenizer files (with their values scaled down), random weights.
/// Shared with Platform.Tests (linked there), so it only needs the committed fixtures.
/// </summary>
public static class PublishedCheckpoints
{
    private static string Fixtures => Path.Combine(TestInfrastructure.RepositoryRoot(), "tests", "FineTuning.Tests", "Fixtures");

    /// <summary>Llama 3's special tokens, at ids 300.. here (128000.. in the published tokenizer), in the same order.</summary>
    public const int BeginOfText = 300, EndOfText = 301, StartHeader = 306, EndHeader = 307, EndOfMessage = 308, EndOfTurn = 309;

    /// <summary>The context of the Llama-3.2-like checkpoint: the published 131,072 positions.</summary>
    public const int Llama32Context = 131072;

    private static readonly string[] Llama3Specials =
    [
        "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
        "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
        "<|eom_id|>", "<|eot_id|>", "<|python_tag|>", "<|reserved_special_token_3|>",
    ];

    /// <summary>
    /// meta-llama/Llama-3.2-1B-Instruct's layout in <paramref name="directory"/>: config.json (llama3 rope scaling, tied
    /// embeddings, eos as a list), generation_config.json (eos [end_of_text, eom, eot]), BF16 weights in three shards
    /// with model.safetensors.index.json, a byte-level BPE tokenizer.json with Llama 3's pre-tokenizer, post-processor
    /// and added special tokens, tokenizer_config.json with the Llama 3.1 chat template, special_tokens_map.json.
    /// A <paramref name="vocabSize"/> above the tokenizer's 312 ids pads the embeddings as Qwen2.5 does (151,936 rows for 151,665 tokens).
    /// </summary>
    public static void Llama32Instruct(string directory, long seed = 5, int vocabSize = BeginOfText + 12)
    {
        var config = Json($$"""
            {
              "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
              "bos_token_id": {{BeginOfText}}, "eos_token_id": [{{EndOfText}}, {{EndOfMessage}}, {{EndOfTurn}}],
              "head_dim": 8, "hidden_act": "silu", "hidden_size": 32, "initializer_range": 0.02, "intermediate_size": 64,
              "max_position_embeddings": {{Llama32Context}}, "mlp_bias": false, "model_type": "llama",
              "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2, "pretraining_tp": 1,
              "rms_norm_eps": 1e-05,
              "rope_scaling": { "factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0, "original_max_position_embeddings": 8192, "rope_type": "llama3" },
              "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
              "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": {{vocabSize}}
            }
            """);
        var generation = Json($$"""
            { "bos_token_id": {{BeginOfText}}, "do_sample": true, "eos_token_id": [{{EndOfText}}, {{EndOfMessage}}, {{EndOfTurn}}],
              "temperature": 0.6, "top_p": 0.9, "transformers_version": "4.45.0.dev0" }
            """);
        WriteWeights(directory, config, generation, SafeTensorDType.BF16, maxShardBytes: 12_000, seed);

        // llama-tiny's byte-level vocabulary and merges, its id 0 (<|endoftext|>, not a Llama 3 token) renamed to a
        // reserved special token, so every id below vocab_size is a token, as in the published tokenizer.
        var tokenizer = Json(File.ReadAllText(Path.Combine(Fixtures, "llama-tiny", "tokenizer.json")));
        var model = tokenizer["model"]!.AsObject();
        var vocab = model["vocab"]!.AsObject();
        vocab.Remove("<|endoftext|>");
        vocab["<|reserved_special_token_247|>"] = 0;
        model["ignore_merges"] = true;
        var added = new JsonArray(Added(0, "<|reserved_special_token_247|>"));
        for (var i = 0; i < Llama3Specials.Length; i++)
        {
            added.Add(Added(BeginOfText + i, Llama3Specials[i]));
        }
        tokenizer["added_tokens"] = added;
        tokenizer["pre_tokenizer"] = Json("""
            {"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]}
            """);
        tokenizer["post_processor"] = Json("""
            {"type":"Sequence","processors":[{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":false,"use_regex":true},
              {"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<|begin_of_text|>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],
               "pair":[{"SpecialToken":{"id":"<|begin_of_text|>","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"<|begin_of_text|>","type_id":1}},{"Sequence":{"id":"B","type_id":1}}],
               "special_tokens":{"<|begin_of_text|>":{"id":"<|begin_of_text|>","ids":[BOS],"tokens":["<|begin_of_text|>"]}}}]}
            """.Replace("BOS", BeginOfText.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal));
        File.WriteAllText(Path.Combine(directory, "tokenizer.json"), tokenizer.ToJsonString());

        var decoder = new JsonObject { ["0"] = AddedDecoder("<|reserved_special_token_247|>") };
        for (var i = 0; i < Llama3Specials.Length; i++) decoder[(BeginOfText + i).ToString(System.Globalization.CultureInfo.InvariantCulture)] = AddedDecoder(Llama3Specials[i]);
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), new JsonObject
        {
            ["added_tokens_decoder"] = decoder,
            ["bos_token"] = "<|begin_of_text|>",
            ["chat_template"] = File.ReadAllText(Path.Combine(Fixtures, "chat-templates", "llama-3.1-instruct.jinja")),
            ["clean_up_tokenization_spaces"] = true,
            ["eos_token"] = "<|eot_id|>",
            ["model_input_names"] = new JsonArray("input_ids", "attention_mask"),
            ["model_max_length"] = Llama32Context,
            ["tokenizer_class"] = "PreTrainedTokenizerFast",
        }.ToJsonString());
        File.WriteAllText(Path.Combine(directory, "special_tokens_map.json"), """
            {"bos_token":{"content":"<|begin_of_text|>","lstrip":false,"normalized":false,"rstrip":false,"single_word":false},
             "eos_token":{"content":"<|eot_id|>","lstrip":false,"normalized":false,"rstrip":false,"single_word":false}}
            """);
    }

    /// <summary>
    /// TinyLlama/TinyLlama-1.1B-Chat-v1.0's layout in <paramref name="directory"/>, around the SentencePiece-style
    /// tokenizer.json and tokenizer_config.json already there (the 32,000-token fixture): config.json (untied head,
    /// rope_theta 10000, rope_scaling null, 4 key/value heads for 32 query heads, scaled to 2 for 4), generation_config.json
    /// (eos 2, pad 0, max_length 2048), one BF16 model.safetensors, its Zephyr-style chat template and special_tokens_map.json.
    /// </summary>
    public static void TinyLlamaChat(string directory, long seed = 6)
    {
        var config = Json("""
            {
              "architectures": ["LlamaForCausalLM"], "attention_bias": false, "bos_token_id": 1, "eos_token_id": 2,
              "hidden_act": "silu", "hidden_size": 16, "initializer_range": 0.02, "intermediate_size": 32,
              "max_position_embeddings": 2048, "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 1,
              "num_key_value_heads": 2, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 10000.0,
              "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.35.0", "use_cache": true,
              "vocab_size": 32000
            }
            """);
        var generation = Json("""{ "bos_token_id": 1, "eos_token_id": 2, "max_length": 2048, "pad_token_id": 0, "transformers_version": "4.35.0" }""");
        WriteWeights(directory, config, generation, SafeTensorDType.BF16, maxShardBytes: long.MaxValue, seed);
        var tokenizerConfig = Json(File.ReadAllText(Path.Combine(directory, "tokenizer_config.json")));
        tokenizerConfig["chat_template"] = File.ReadAllText(Path.Combine(Fixtures, "chat-templates", "tinyllama-1.1b-chat-v1.0.jinja"));
        tokenizerConfig["pad_token"] = "</s>";
        tokenizerConfig["model_max_length"] = 2048;
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), tokenizerConfig.ToJsonString());
        File.WriteAllText(Path.Combine(directory, "special_tokens_map.json"), """
            {"bos_token":{"content":"<s>","lstrip":false,"normalized":false,"rstrip":false,"single_word":false},
             "eos_token":{"content":"</s>","lstrip":false,"normalized":false,"rstrip":false,"single_word":false},
             "pad_token":"</s>",
             "unk_token":{"content":"<unk>","lstrip":false,"normalized":false,"rstrip":false,"single_word":false}}
            """);
    }

    /// <summary>Random weights for <paramref name="config"/> written as <paramref name="dtype"/>, then the published config files verbatim over the engine's.</summary>
    private static void WriteWeights(string directory, JsonObject config, JsonObject generation, SafeTensorDType dtype, long maxShardBytes, long seed)
    {
        Directory.CreateDirectory(directory);
        using (var model = CausalLm.Create(ModelConfig.Parse(config), tokenizer: null, seed))
            model.Save(directory, new SaveOptions { DType = dtype, MaxShardBytes = maxShardBytes });
        File.WriteAllText(Path.Combine(directory, "config.json"), config.ToJsonString());
        File.WriteAllText(Path.Combine(directory, "generation_config.json"), generation.ToJsonString());
    }

    private static JsonObject Json(string text) => JsonNode.Parse(text)!.AsObject();

    private static JsonObject Added(int id, string content) => new()
    {
        ["id"] = id, ["content"] = content, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = false, ["special"] = true,
    };

    private static JsonObject AddedDecoder(string content) => new()
    {
        ["content"] = content, ["lstrip"] = false, ["normalized"] = false, ["rstrip"] = false, ["single_word"] = false, ["special"] = true,
    };
}

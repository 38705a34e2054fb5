using System.Text;
using System.Text.Json.Nodes;
using AspireTune.Engine.Checkpoints;
using AspireTune.Engine.Models;
using static TorchSharp.torch;

namespace AspireTune.FineTuning.Tests.Engine;

public sealed class CheckpointTests
{
    [Theory]
    [InlineData("gpt2-tiny", SafeTensorDType.F32, 1L << 30)]
    [InlineData("llama-tiny", SafeTensorDType.F32, 40_000L)]
    [InlineData("qwen2-tiny", SafeTensorDType.BF16, 1L << 30)]
    public void Save_ThenLoad_ReproducesLogits(string name, SafeTensorDType dtype, long shard)
    {
        using var model = CausalLm.Load(EngineFixtures.Path_(name));
        var dir = EngineFixtures.TempDirectory();
        using var ids = tensor(new long[] { 1, 5, 9, 77, 120, 3 }, [1, 6]);

        model.Save(dir, new SaveOptions { DType = dtype, MaxShardBytes = shard });
        using var reloaded = CausalLm.Load(dir);

        using var _ = no_grad();
        var tolerance = dtype == SafeTensorDType.F32 ? 0 : 0.05;
        reloaded.Forward(ids).allclose(model.Forward(ids), rtol: 0, atol: tolerance).Should().BeTrue();
        reloaded.Config.Architecture.Should().Be(model.Config.Architecture);
        reloaded.Tokenizer!.Encode("Hello world").Should().Equal(model.Tokenizer!.Encode("Hello world"));
        File.Exists(Path.Combine(dir, shard < 100_000 ? HfWeights.IndexFile : HfWeights.SingleFile)).Should().BeTrue();
    }

    [Fact]
    public void Parse_Transformers4LlamaConfig_ReadsTopLevelRopeSettings()
    {
        var json = JsonNode.Parse("""
            {"model_type":"llama","vocab_size":128256,"hidden_size":2048,"num_hidden_layers":16,"num_attention_heads":32,
             "num_key_value_heads":8,"intermediate_size":8192,"max_position_embeddings":131072,"rms_norm_eps":1e-5,
             "rope_theta":500000.0,"rope_scaling":{"factor":32.0,"low_freq_factor":1.0,"high_freq_factor":4.0,
             "original_max_position_embeddings":8192,"rope_type":"llama3"},"tie_word_embeddings":true,"head_dim":64}
            """)!.AsObject();

        var config = ModelConfig.Parse(json);

        config.RopeTheta.Should().Be(500000.0);
        config.RopeScaling.Should().Be(new RopeScaling(32, 1, 4, 8192));
        config.KvHeads.Should().Be(8);
        config.HeadSize.Should().Be(64);
        config.TieWordEmbeddings.Should().BeTrue();
    }

    [Theory]
    [InlineData("\"model_type\":\"mistral\",\"sliding_window\":4096", 4096)]
    [InlineData("\"model_type\":\"mistral\"", 4096)]
    [InlineData("\"model_type\":\"mistral\",\"sliding_window\":null", 32768)]
    [InlineData("\"model_type\":\"qwen2\",\"sliding_window\":4096,\"use_sliding_window\":false", 32768)]
    [InlineData("\"model_type\":\"qwen2\",\"sliding_window\":4096,\"use_sliding_window\":true", 4096)]
    public void Parse_SlidingWindowConfig_CutsTheContextToTheWindowAndWritesTheFilesBack(string type, int context)
    {
        var json = JsonNode.Parse("{" + type + ",\"vocab_size\":32768,\"hidden_size\":4096,\"num_hidden_layers\":32,\"num_attention_heads\":32,"
            + "\"num_key_value_heads\":8,\"intermediate_size\":14336,\"max_position_embeddings\":32768,\"rope_theta\":1000000.0}")!.AsObject();

        var config = ModelConfig.Parse(json);
        var written = config.ToJson();

        config.MaxPositions.Should().Be(context, "the engine attends to every position: the same as the window up to its length");
        written["max_position_embeddings"]!.GetValue<int>().Should().Be(32768);
        written["sliding_window"]?.ToJsonString().Should().Be(json["sliding_window"]?.ToJsonString());
    }

    [Fact]
    public void Load_TruncatedSafetensors_NamesFileAndTensor()
    {
        var dir = CopyFixture("gpt2-tiny");
        var file = Path.Combine(dir, "model.safetensors");
        var bytes = File.ReadAllBytes(file);
        File.WriteAllBytes(file, bytes[..(bytes.Length - 100)]);

        var act = () => CausalLm.Load(dir);

        var error = act.Should().Throw<ModelFormatException>().Which;
        error.File.Should().Be(file);
        error.Tensor.Should().NotBeNullOrEmpty();
        error.Message.Should().Contain("past the end");
    }

    [Fact]
    public void Load_HeaderLengthPastEndOfFile_IsRejected()
    {
        var dir = CopyFixture("gpt2-tiny");
        var file = Path.Combine(dir, "model.safetensors");
        var bytes = File.ReadAllBytes(file);
        BitConverter.GetBytes((long)bytes.Length * 4).CopyTo(bytes, 0);
        File.WriteAllBytes(file, bytes);

        var act = () => CausalLm.Load(dir);

        act.Should().Throw<ModelFormatException>().WithMessage("*header length*");
    }

    [Fact]
    public void Load_UnknownDType_NamesTensor()
    {
        var dir = CopyFixture("gpt2-tiny");
        RewriteHeader(Path.Combine(dir, "model.safetensors"), h => h["transformer.wpe.weight"]!["dtype"] = "F8_E4M3");

        var act = () => CausalLm.Load(dir);

        var error = act.Should().Throw<ModelFormatException>().Which;
        error.Tensor.Should().Be("transformer.wpe.weight");
        error.Message.Should().Contain("F8_E4M3");
    }

    [Fact]
    public void Load_MissingTensor_NamesTensor()
    {
        var dir = CopyFixture("llama-tiny");
        RewriteHeader(Path.Combine(dir, "model.safetensors"), h => h.Remove("model.layers.1.mlp.up_proj.weight"));

        var act = () => CausalLm.Load(dir);

        var error = act.Should().Throw<ModelFormatException>().Which;
        error.Tensor.Should().Be("model.layers.1.mlp.up_proj.weight");
        error.Message.Should().Contain("missing");
    }

    [Fact]
    public void Load_ShapeContradictingConfig_NamesFileAndTensor()
    {
        var dir = CopyFixture("llama-tiny");
        var configPath = Path.Combine(dir, "config.json");
        var config = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        config["intermediate_size"] = 96;
        File.WriteAllText(configPath, config.ToJsonString());

        var act = () => CausalLm.Load(dir);

        var error = act.Should().Throw<ModelFormatException>().Which;
        error.Tensor.Should().Be("model.layers.0.mlp.gate_proj.weight");
        error.File.Should().EndWith("model.safetensors");
        error.Message.Should().Contain("[64, 32]").And.Contain("[96, 32]");
    }

    [Fact]
    public void Load_UnsupportedArchitecture_SaysWhichAreSupported()
    {
        var dir = CopyFixture("gpt2-tiny");
        var configPath = Path.Combine(dir, "config.json");
        var config = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        config["model_type"] = "bert";
        File.WriteAllText(configPath, config.ToJsonString());

        var act = () => CausalLm.Load(dir);

        act.Should().Throw<ModelFormatException>().WithMessage("*config.json: model_type 'bert' is not supported*");
    }

    [Fact]
    public void Load_TokenizerLargerThanVocabulary_IsRejected()
    {
        var dir = CopyFixture("gpt2-tiny");
        var configPath = Path.Combine(dir, "config.json");
        var config = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        config["vocab_size"] = 200;
        File.WriteAllText(configPath, config.ToJsonString());

        var act = () => CausalLm.Load(dir);

        act.Should().Throw<ModelFormatException>().WithMessage("*tokenizer files define 300 tokens but config.json vocab_size is 200*");
    }

    private static string CopyFixture(string name)
    {
        var dir = EngineFixtures.TempDirectory();
        foreach (var f in Directory.GetFiles(EngineFixtures.Path_(name)))
            File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        return dir;
    }

    /// <summary>Edits the JSON header in place, keeping the data section, as a damaged or hand-edited file would.</summary>
    private static void RewriteHeader(string file, Action<JsonObject> edit)
    {
        var bytes = File.ReadAllBytes(file);
        var length = BitConverter.ToInt64(bytes, 0);
        var header = JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, (int)length))!.AsObject();
        edit(header);
        var newHeader = Encoding.UTF8.GetBytes(header.ToJsonString());
        using var fs = File.Create(file);
        fs.Write(BitConverter.GetBytes((long)newHeader.Length));
        fs.Write(newHeader);
        fs.Write(bytes, 8 + (int)length, bytes.Length - 8 - (int)length);
    }
}

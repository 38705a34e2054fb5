// Over 400 lines on purpose: the engine benchmark is one console program whose modes (train, generate, serve, savecheck,
// sft, parity, sftspeed, lora-parity) share argument parsing and model shapes; data-parallel modes live in DataParallelBench.cs.
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using AspireTune.Engine.Checkpoints;
using AspireTune.Engine.Generation;
using AspireTune.Engine.Kernels;
using AspireTune.Engine.Models;
using AspireTune.Engine.Tokenization;
using AspireTune.Engine.Training;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

// Engine benchmarks. Each mode prints one JSON line that bench/engine-gpu.sh and engine-cpu.sh tabulate.
//   train    --device cuda|cpu --shape gpt2-small|demo|llama-1b --batch N --seq N --steps N --warmup N --optimizer flat|stock
//            --fused 1|0 (the engine's CUDA kernels) --lora R (rank R on every linear, frozen base; --frozen-base 1 builds
//            the base frozen in bf16 instead of casting fp32 weights in AddLora)
//            --model DIR (load a checkpoint instead of --shape) --data FILE (int32 batches [n, batch, seq + 1], step i
//            trains on batch i mod n) --curve FILE (writes every step's loss there as one JSON line)
//   sftspeed GPT3_ENCODER_TGZ --device cuda --lengths full|short [--packing 1 --steps N --batch N --examples N]: SftTrainer's own loop at GPT-2-small size
//   parity   --device cuda [--shape S --batch N --seq N]: fused kernels against the TorchSharp path (loss, gradients, one step)
//   generate --device cuda|cpu --shape gpt2-small|demo --prompt N --new N
//   serve    --device cuda|cpu --shape S --prompt N --new N --concurrency C [--rounds R --sequential 1] (ServingBench.cs)
//   savecheck OUT_DIR FIXTURES_DIR GPT3_ENCODER_DIR
//   sft GPT3_ENCODER_TGZ OUT_DIR --device cuda|cpu   (the real SftTrainer end to end: train, evaluate, resume, generate, save)
//   tokenize MODEL_DIR TEXT_FILE [--rounds N]: encode speed of the directory's tokenizer (TokenizerBench.cs)
var mode = args.Length > 0 ? args[0] : "train";
string Arg(string name, string fallback)
{
    var i = Array.IndexOf(args, "--" + name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}
int IntArg(string name, int fallback) => int.Parse(Arg(name, fallback.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);

var device = Arg("device", cuda.is_available() ? "cuda" : "cpu") == "cuda" ? CUDA : CPU;
ModelConfig Shape(string name) => name switch
{
    "gpt2-small" => ModelConfig.Gpt2Small with { EmbeddingDropout = 0, AttentionDropout = 0, ResidualDropout = 0 },
    // The embedded demo's model: GPT-2 vocabulary, 4 layers of 256, 256 positions.
    "demo" => ModelConfig.Gpt2(50257, 256, 4, 4, 256, dropout: 0),
    // Llama-3.2-1B: 16 layers of 2048, 32 heads over 8 key/value heads, SwiGLU 8192, tied 128,256-token head.
    "llama-1b" => ModelConfig.Llama(128256, 2048, 16, 32, 8, 8192, 131072) with
    {
        RopeTheta = 500000, RopeScaling = new RopeScaling(32, 1, 4, 8192), BosTokenId = 128000, EosTokenId = 128001,
    },
    // Llama-3-8B: 32 layers of 4096, 32 heads over 8 key/value heads, SwiGLU 14336, untied 128,256-token head.
    "llama-8b" => ModelConfig.Llama(128256, 4096, 32, 32, 8, 14336, 8192, tie: false) with
    {
        RopeTheta = 500000, BosTokenId = 128000, EosTokenId = 128001,
    },
    _ => throw new ArgumentException("unknown shape " + name),
};

switch (mode)
{
    case "train":
        Train();
        break;
    case "generate":
        Generate();
        break;
    case "savecheck":
        SaveCheck(args[1], args[2], args[3]);
        break;
    case "sft":
        Sft(args[1], args[2]);
        break;
    case "parity":
        Parity();
        break;
    case "sftspeed":
        SftSpeed(args[1]);
        break;
    case "serve":
        Serve();
        break;
    case "lora-parity":
        LoraParity();
        break;
    case "dp-parity" or "dp-launch" or "dp-rank":
        DataParallelBench.Run(mode, Arg);
        break;
    case "tokenize":
        TokenizerBench.Run(args[1], args[2], IntArg("rounds", 5));
        break;
    default:
        throw new ArgumentException("mode: train | generate | savecheck | sft | parity | sftspeed | dp-parity | dp-launch | dp-rank | tokenize");
}

void Train()
{
    int batch = IntArg("batch", 16), seq = IntArg("seq", 1024), steps = IntArg("steps", 20), warmup = IntArg("warmup", 5);
    var optimizerKind = Arg("optimizer", "flat");
    var loraRank = IntArg("lora", 0);
    if (device.type == DeviceType.CUDA) backends.cuda.matmul.allow_tf32 = true;
    var modelDir = Arg("model", "");
    // --frozen-base 1 (with --lora): the base built frozen, in bf16 on CUDA, instead of fp32 that AddLora then casts.
    var frozenBase = loraRank > 0 && Arg("frozen-base", "0") == "1";
    var buildOptions = new ModelOptions { FrozenBase = frozenBase };
    using var model = modelDir.Length > 0 ? CausalLm.Load(modelDir, device, buildOptions)
        : CausalLm.Create(Shape(Arg("shape", "gpt2-small")), null, seed: 0, device: device, options: buildOptions);
    var config = model.Config;
    model.FusedKernels = Arg("fused", "1") == "1";
    if (loraRank > 0)
        model.AddLora(new LoraOptions { Rank = loraRank, Alpha = 2 * loraRank, Dropout = 0,
            TargetModules = [.. model.Network.Projections().Select(p => p.ShortName).Distinct()] });
    model.SetTraining(true);
    var named = model.NamedParameters().Where(p => p.Parameter.requires_grad).ToList();
    FlatParameters? flat = null;
    FlatAdamW? adam = null;
    optim.Optimizer? stock = null;
    if (optimizerKind == "flat")
    {
        flat = new FlatParameters(named, 0.1, device);
        adam = new FlatAdamW(flat, 0.9, 0.95, 1e-8, model.Kernels);
    }
    else
    {
        // TorchSharp as it is: its AdamW, per-parameter gradients, zero_grad.
        stock = optim.AdamW(named.Select(p => p.Parameter), lr: 3e-4, beta1: 0.9, beta2: 0.95, weight_decay: 0.1);
    }
    manual_seed(1);
    var dataFile = Arg("data", "");
    using var data = dataFile.Length > 0
        ? tensor(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(File.ReadAllBytes(dataFile)).ToArray(), dtype: ScalarType.Int32, device: CPU)
            .view(-1, batch, seq + 1).to(ScalarType.Int64).to(device)
        : randint(0, config.VocabSize, [1, batch, seq + 1], dtype: ScalarType.Int64, device: device);
    var curveFile = Arg("curve", "");
    var sw = new Stopwatch();
    double lastLoss = 0;
    var losses = new List<float>();
    for (var step = 0; step < warmup + steps; step++)
    {
        if (step == warmup)
        {
            if (device.type == DeviceType.CUDA) cuda.synchronize();
            sw.Start();
        }
        using var scope = NewDisposeScope();
        var input = data[step % data.shape[0], .., ..^1].contiguous();
        var target = data[step % data.shape[0], .., 1..].contiguous();
        Tensor loss;
        if (flat is not null && Arg("loss", "sum") == "sum")
        {
            loss = model.LossSum(input, target) / (batch * seq);
        }
        else
        {
            var logits = model.Forward(input);
            loss = F.cross_entropy(logits.view(-1, config.VocabSize), target.view(-1));
        }
        loss.backward();
        if (flat is not null)
        {
            var norm = flat.GradNorm();
            adam!.Step(3e-4, norm, 1.0);
            flat.ZeroGrad();
        }
        else
        {
            nn.utils.clip_grad_norm_(named.Select(p => p.Parameter), 1.0);
            stock!.step();
            stock.zero_grad();
        }
        if (step == warmup + steps - 1) lastLoss = loss.item<float>();
        if (curveFile.Length > 0) losses.Add(loss.item<float>());
    }
    if (device.type == DeviceType.CUDA) cuda.synchronize();
    var seconds = sw.Elapsed.TotalSeconds;
    var fused = model.Kernels is not null && optimizerKind == "flat";
    if (curveFile.Length > 0)
        File.AppendAllText(curveFile, new JsonObject { ["impl"] = "aspiretune", ["losses"] = new JsonArray([.. losses.Select(l => (JsonNode)l)]) }.ToJsonString() + "\n");
    Console.WriteLine(new JsonObject
    {
        ["impl"] = $"aspiretune-{optimizerKind}" + (Arg("loss", "sum") == "sum" ? "" : "-ce") + (fused ? "-fused" : "") + (loraRank > 0 ? $"-lora{loraRank}" : "")
            + (frozenBase ? "-frozenbase" : "") + (Arg("shape", "") == "llama-8b" ? "-llama-8b" : ""),
        // Bytes of every parameter by dtype: a bf16-only frozen base shows here as BFloat16 with no Float32 copy.
        ["param_bytes"] = new JsonObject([.. model.NamedParameters().GroupBy(p => p.Parameter.dtype)
            .Select(g => KeyValuePair.Create(g.Key.ToString(), (JsonNode?)g.Sum(p => p.Parameter.numel() * p.Parameter.ElementSize)))]),
        ["shape"] = modelDir.Length > 0 ? "checkpoint" : Arg("shape", "gpt2-small"), ["params"] = model.ParameterCount, ["trainable"] = named.Sum(p => p.Parameter.numel()),
        ["batch"] = batch, ["seq"] = seq, ["steps"] = steps, ["ms_per_step"] = 1000 * seconds / steps,
        ["tokens_per_s"] = batch * seq * steps / seconds, ["loss"] = lastLoss,
        ["kernels"] = model.Kernels is not null ? "fused" : EngineKernels.UnavailableReason ?? "off",
    }.ToJsonString());
}

// The fused kernels against the TorchSharp path on the same weights and batch: loss, gradients, one AdamW step.
void Sync()
{
    if (device.type == DeviceType.CUDA) cuda.synchronize();
}

void Parity()
{
    var config = Shape(Arg("shape", "gpt2-small"));
    int batch = IntArg("batch", 4), seq = IntArg("seq", 512);
    manual_seed(7);
    using var data = randint(0, config.VocabSize, [batch, seq + 1], dtype: ScalarType.Int64, device: device);
    using var input = data[.., ..^1].contiguous();
    using var target = data[.., 1..].clone();
    // A quarter of the targets ignored, as prompt tokens are in fine-tuning.
    using (no_grad()) target.masked_fill_(rand([batch, seq], device: device).lt(0.25), -100);
    var results = new JsonObject { ["mode"] = "parity", ["shape"] = Arg("shape", "gpt2-small"), ["batch"] = batch, ["seq"] = seq };
    (float Loss, Tensor Grad) Run(bool fused, Func<FlatParameters, EngineKernels?, JsonObject>? then = null)
    {
        using var model = CausalLm.Create(config, null, seed: 0, device: device);
        model.FusedKernels = fused;
        if (fused && model.Kernels is null && device.type == DeviceType.CUDA)
            throw new InvalidOperationException("fused kernels unavailable: " + EngineKernels.UnavailableReason);
        model.SetTraining(true);
        using var flat = new FlatParameters(model.NamedParameters(), 0.1, device);
        // On the CPU (to check this harness) the chunked loss runs with its TorchSharp row kernel.
        var sum = fused && device.type != DeviceType.CUDA
            ? model.LossSumChunked(input, target, 5, ChunkedCrossEntropy.TorchRows) : model.LossSum(input, target);
        var loss = sum / target.ne(-100).sum();
        loss.backward();
        Sync();
        var result = (loss.item<float>(), flat.Grad.clone());
        if (then is not null) foreach (var (k, v) in then(flat, model.Kernels)) results[k] = v?.DeepClone();
        return result;
    }
    // One AdamW step from the same weights and gradients, clipping active (max norm half the norm): TorchSharp vs kernel.
    JsonObject Step(FlatParameters flat, EngineKernels? kernels)
    {
        var start = flat.Data.clone();
        var grad = flat.Grad.clone();
        Tensor After(EngineKernels? k)
        {
            using (no_grad())
            {
                flat.Data.copy_(start);
                flat.Grad.copy_(grad);
            }
            using var adam = new FlatAdamW(flat, 0.9, 0.95, 1e-8, k);
            for (var i = 0; i < 3; i++)
            {
                // The same gradients every step (the TorchSharp path clips them in place, the kernel as it reads them).
                using (no_grad()) flat.Grad.copy_(grad);
                using var norm = flat.GradNorm();
                adam.Step(1e-3, norm, 0.5 * norm.item<float>());
            }
            Sync();
            return flat.Data.clone();
        }
        var plainAfter = After(null);
        var fusedAfter = After(kernels);
        var moved = (plainAfter - start).abs().max().item<float>();
        return new JsonObject { ["adamw_3_steps_max_abs_diff"] = (fusedAfter - plainAfter).abs().max().item<float>(), ["adamw_max_update"] = moved };
    }
    var plain = Run(false);
    var fusedRun = Run(true, Step);
    double Rel(Tensor a, Tensor b) => (a - b).norm().item<float>() / Math.Max(1e-30, b.norm().item<float>());
    results["loss_plain"] = plain.Loss;
    results["loss_fused"] = fusedRun.Loss;
    var lossDiff = Math.Abs(plain.Loss - fusedRun.Loss) / Math.Abs(plain.Loss);
    var gradDiff = Rel(fusedRun.Grad, plain.Grad);
    results["loss_rel_diff"] = lossDiff;
    results["grad_rel_diff"] = gradDiff;
    results["ok"] = lossDiff < 1e-3 && gradDiff < 2e-2 && results["adamw_3_steps_max_abs_diff"]!.GetValue<float>() < 1e-5;
    Console.WriteLine(results.ToJsonString());
}

void Generate()
{
    var config = Shape(Arg("shape", "gpt2-small"));
    int promptLen = IntArg("prompt", 32), newTokens = IntArg("new", 128);
    using var model = CausalLm.Create(config, null, seed: 0, device: device);
    model.BFloat16Matmuls = false; // fp32 on both sides of the comparison
    var generator = new TextGenerator(model);
    var prompt = Enumerable.Range(0, promptLen).Select(i => (i * 97 + 13) % config.VocabSize).ToList();
    var options = new GenerationOptions { MaxTokens = newTokens, StopAtEos = false };
    generator.Generate(prompt, options with { MaxTokens = 8 }); // warm-up
    var sw = Stopwatch.StartNew();
    var result = generator.Generate(prompt, options);
    var seconds = sw.Elapsed.TotalSeconds;
    Console.WriteLine(new JsonObject
    {
        ["impl"] = "aspiretune-generate", ["new_tokens"] = result.Tokens.Count, ["tokens_per_s"] = result.Tokens.Count / seconds,
        ["ms_per_token"] = 1000 * seconds / result.Tokens.Count,
        ["first_ids"] = new JsonArray([.. result.Tokens.Take(8).Select(t => (JsonNode)t.Id)]),
        ["ids"] = new JsonArray([.. result.Tokens.Select(t => (JsonNode)t.Id)]),
        ["logprob_sum"] = result.Tokens.Sum(t => t.Logprob),
        ["decoder"] = DecoderPath(model),
    }.ToJsonString());
}

string DecoderPath(CausalLm model)
{
    using var fast = Gpt2Decoder.TryCreate(model);
    return fast is not null ? "decode kernels" : "plain";
}

// LoRA on a 4-layer Llama-1B shape: the fused RMSNorm / SwiGLU / loss kernels against the TorchSharp path (loss, LoRA gradients).
void LoraParity()
{
    var config = Shape("llama-1b") with { NumLayers = 4 };
    int batch = IntArg("batch", 2), seq = IntArg("seq", 512);
    manual_seed(7);
    using var data = randint(0, config.VocabSize, [batch, seq + 1], dtype: ScalarType.Int64, device: device);
    using var input = data[.., ..^1].contiguous();
    using var target = data[.., 1..].contiguous();
    (float Loss, Tensor Grad) Run(bool fused)
    {
        using var model = CausalLm.Create(config, null, seed: 0, device: device);
        model.FusedKernels = fused;
        model.AddLora(new LoraOptions { Rank = 16, Alpha = 32, Dropout = 0, TargetModules = [.. model.Network.Projections().Select(p => p.ShortName).Distinct()] });
        // B starts at zero (no gradient reaches A): a small random B makes every path carry gradient.
        using (no_grad())
            foreach (var (_, layer) in model.Network.Projections()) layer.lora_B!.normal_(0, 0.02);
        model.SetTraining(true);
        var loss = model.LossSum(input, target) / (batch * seq);
        loss.backward();
        var grads = cat([.. model.NamedParameters().Where(p => p.Parameter.requires_grad).Select(p => p.Parameter.grad!.flatten())]);
        return (loss.item<float>(), grads.detach().clone());
    }
    var plain = Run(false);
    var fused = Run(true);
    var gradDiff = (fused.Grad - plain.Grad).norm().item<float>() / Math.Max(1e-30, plain.Grad.norm().item<float>());
    var lossDiff = Math.Abs(fused.Loss - plain.Loss) / Math.Abs(plain.Loss);
    Console.WriteLine(new JsonObject
    {
        ["mode"] = "lora-parity", ["loss_plain"] = plain.Loss, ["loss_fused"] = fused.Loss, ["loss_rel_diff"] = lossDiff,
        ["grad_rel_diff"] = gradDiff, ["ok"] = lossDiff < 1e-3 && gradDiff < 3e-2,
    }.ToJsonString());
}

void Serve()
{
    // Default fp32 on both sides of the comparison, as transformers generate() runs. --bf16 1: bf16 matmuls over fp32
    // weights with a cached bf16 copy (how ModelHost served before); --frozen-base 1 with it: weights built frozen in
    // bf16 only (how ModelHost serves now).
    var bf16 = Arg("bf16", "0") == "1";
    var options = new ModelOptions { BFloat16Matmuls = bf16, FrozenBase = bf16 && Arg("frozen-base", "0") == "1" };
    using var model = Arg("model", "") is { Length: > 0 } dir ? CausalLm.Load(dir, device, options)
        : CausalLm.Create(Shape(Arg("shape", "gpt2-small")), null, seed: 0, device: device, options: options);
    foreach (var (_, p) in model.NamedParameters()) p.requires_grad = false;
    ServingBench.Run(model, Arg);
}

// Saves models the way AspireTune does, with the logits it computes, for transformers to load and compare.
void SaveCheck(string outDir, string fixtures, string gpt3Encoder)
{
    var samples = new[] { "Hello world", "don't stop", "naïve café", "  spaces  and\nnewlines" };
    void Write(string name, CausalLm model)
    {
        var dir = Path.Combine(outDir, name);
        var ids = tensor(new long[] { 1, 5, 9, 77, 120, 3, 42, 7 }, [1, 8], device: model.Device);
        using (no_grad())
        {
            var logits = model.Forward(ids).cpu().data<float>().ToArray();
            File.WriteAllText(Path.Combine(dir, "aspiretune-reference.json"), new JsonObject
            {
                ["input_ids"] = new JsonArray([.. ids.cpu().data<long>().ToArray().Select(x => (JsonNode)x)]),
                ["logits"] = new JsonArray([.. logits.Select(x => (JsonNode)x)]),
                ["samples"] = new JsonArray([.. samples.Select(s => (JsonNode)s)]),
                ["sample_ids"] = new JsonArray([.. samples.Select(s => (JsonNode)new JsonArray([.. model.Tokenizer!.Encode(s).Select(i => (JsonNode)i)]))]),
            }.ToJsonString());
        }
    }
    SaveTrained("gpt2-gpt3-encoder", CausalLm.Create(ModelConfig.Gpt2(50257, 64, 2, 4, 128, 0) with { BosTokenId = 50256, EosTokenId = 50256 },
        ByteLevelBpeTokenizer.FromVocabAndMerges(Path.Combine(gpt3Encoder, "encoder.json"), Path.Combine(gpt3Encoder, "vocab.bpe")), 3, CPU), null, null);
    SaveTrained("llama-lora-merged", CausalLm.Load(Path.Combine(fixtures, "llama-tiny")), new LoraOptions { Rank = 4, Alpha = 8, TargetModules = ["q_proj", "v_proj", "down_proj"] }, null);
    SaveTrained("qwen2-bf16-sharded", CausalLm.Load(Path.Combine(fixtures, "qwen2-tiny")), null,
        new SaveOptions { DType = SafeTensorDType.BF16, MaxShardBytes = 30_000 });

    void SaveTrained(string name, CausalLm model, LoraOptions? lora, SaveOptions? save)
    {
        using (model)
        {
            var train = Enumerable.Range(0, 32).Select(i => new SftExample($"item {i} is", i % 2 == 0 ? " even" : " odd")).ToList();
            new SftTrainer(model, new SftOptions { Epochs = 1, BatchSize = 8, LearningRate = 1e-2, EvalEverySteps = 2, ExactMatchExamples = 0,
                CheckpointEverySteps = 0, Lora = lora }).Train(train, train.Take(8).ToList(), Path.Combine(outDir, name + "-ckpt"));
            var dir = Path.Combine(outDir, name);
            model.Save(dir, save);
            if (save?.DType == SafeTensorDType.BF16)
            {
                // The reference logits must come from the weights as stored: reload what was written.
                using var reloaded = CausalLm.Load(dir);
                Write(name, reloaded);
            }
            else
            {
                Write(name, model);
            }
        }
    }
    Console.WriteLine(JsonSerializer.Serialize(new { saved = Directory.GetDirectories(outDir).Select(Path.GetFileName) }));
}

// The trainer as the service will run it, on the device: a demo-size GPT-2 on a small labelling task.
void Sft(string vocabTgz, string outDir)
{
    var tok = ByteLevelBpeTokenizer.FromGpt3EncoderTarball(vocabTgz);
    var rng = new Random(1);
    string[] good = ["great", "good", "lovely", "superb"], bad = ["awful", "bad", "poor", "dull"], filler = ["the", "film", "was", "food", "day", "very"];
    List<SftExample> Make(int n) => [.. Enumerable.Range(0, n).Select(_ =>
    {
        var pos = rng.Next(2) == 0;
        var words = Enumerable.Range(0, 4).Select(_ => filler[rng.Next(filler.Length)]).ToList();
        words.Insert(rng.Next(5), pos ? good[rng.Next(4)] : bad[rng.Next(4)]);
        return new SftExample($"Review: {string.Join(' ', words)}\nLabel:", pos ? " positive" : " negative");
    })];
    var train = Make(512);
    var validation = Make(64);
    var options = new SftOptions { Epochs = 2, BatchSize = 16, LearningRate = 1e-3, WarmupSteps = 5, EvalEverySteps = 16,
        CheckpointEverySteps = 16, KeepCheckpoints = 10, EarlyStoppingPatience = 3, ExactMatchExamples = 32, Dropout = 0.1, Seed = 3 };
    var config = ModelConfig.Gpt2(50257, 256, 4, 4, 256, 0.1);
    var observer = new ConsoleObserver();
    var ckpt = Path.Combine(outDir, "sft-ckpt");
    TrainingResult first;
    using (var model = CausalLm.Create(config, tok, 1, device))
    {
        var trainer = new SftTrainer(model, options, observer);
        var before = trainer.Evaluate(validation);
        Console.WriteLine($"before: {before}");
        first = trainer.Train(train, validation, ckpt);
        var gen = new TextGenerator(model).Generate("Review: the food was superb very\nLabel:", new GenerationOptions { MaxTokens = 4 });
        Console.WriteLine($"generated: '{gen.Text}' ({gen.FinishReason}), best {first.Best}, verdict {first.Verdict}: {first.Advice}");
        model.Save(Path.Combine(outDir, "sft-model"));
    }
    using (var model = CausalLm.Create(config, tok, 1, device))
    {
        var resumed = new SftTrainer(model, options).Train(train, validation, ckpt, Path.Combine(ckpt, "checkpoint-000016"));
        var diff = first.TrainLosses.Zip(resumed.TrainLosses).Max(p => Math.Abs(p.First - p.Second));
        Console.WriteLine(new JsonObject { ["sft_steps"] = first.Steps, ["best_step"] = first.BestStep,
            ["best_val_loss"] = first.Best?.ValidationLoss, ["best_exact_match"] = first.Best?.ExactMatch,
            ["resume_from_16_max_loss_diff"] = diff, ["duration_s"] = first.Duration.TotalSeconds }.ToJsonString());
    }
    using var reloaded = CausalLm.Load(Path.Combine(outDir, "sft-model"), device);
    var again = new TextGenerator(reloaded).Generate("Review: the food was superb very\nLabel:", new GenerationOptions { MaxTokens = 4 });
    Console.WriteLine($"reloaded generates: '{again.Text}'");
}

// The product's training loop (SftTrainer: collation, loss on completions, clipping, schedule, fused kernels) at
// GPT-2-small size on examples of random words: "full" fills 1,024 positions, "short" is 50-500 tokens each.
void SftSpeed(string vocabTgz)
{
    var tok = ByteLevelBpeTokenizer.FromGpt3EncoderTarball(vocabTgz);
    int steps = IntArg("steps", 12), batch = IntArg("batch", 16);
    var lengths = Arg("lengths", "full");
    var rng = new Random(5);
    string[] words = ["the", "model", "learns", "from", "data", "and", "a", "small", "step", "of", "text", "with", "each", "new", "token"];
    string Words(int n) => string.Join(' ', Enumerable.Range(0, n).Select(_ => words[rng.Next(words.Length)]));
    List<SftExample> Make(int n) => [.. Enumerable.Range(0, n).Select(_ =>
    {
        var total = lengths == "full" ? 1100 : rng.Next(50, 500);
        return new SftExample(Words(total * 9 / 10), " " + Words(Math.Max(2, total / 10)));
    })];
    var train = Make(IntArg("examples", batch * steps));
    var validation = Make(batch);
    var options = new SftOptions { Epochs = 1, MaxSteps = steps, BatchSize = batch, LearningRate = 3e-4, WarmupSteps = 2,
        EvalEverySteps = 10_000, CheckpointEverySteps = 0, ExactMatchExamples = 0, Dropout = 0, MaxSequenceLength = 1024, Seed = 1,
        Packing = Arg("packing", "0") == "1" };
    if (device.type == DeviceType.CUDA) backends.cuda.matmul.allow_tf32 = true;
    using var model = CausalLm.Create(ModelConfig.Gpt2Small with { EmbeddingDropout = 0, AttentionDropout = 0, ResidualDropout = 0 }, tok, 0, device);
    model.FusedKernels = Arg("fused", "1") == "1";
    var observer = new SpeedObserver();
    var sw = Stopwatch.StartNew();
    var result = new SftTrainer(model, options, observer).Train(train, validation, Path.Combine(Path.GetTempPath(), "sftspeed-" + Guid.NewGuid().ToString("N")));
    var seconds = sw.Elapsed.TotalSeconds;
    // Padding: the share of the [rows, longest] positions of each batch that are padding, as the trainer batches them
    // (the real-token count is the same either way).
    var seqs = SftData.Encode(train, tok, 1024, "training");
    var rows = options.Packing ? SftData.Pack(seqs, 1024) : [.. seqs.Select(q => new List<SftSequence> { q })];
    var encoded = seqs.Select(q => q.Ids.Length).ToList();
    var padded = rows.Chunk(batch).Sum(c => (long)c.Max(r => r.Sum(q => q.Ids.Length)) * c.Length);
    var timedRates = observer.Rates.Skip(Math.Min(2, observer.Rates.Count - 1)).Order().ToList();
    var median = timedRates[timedRates.Count / 2];
    Console.WriteLine(new JsonObject
    {
        ["impl"] = $"sfttrainer-{lengths}" + (options.Packing ? "-packed" : "") + (model.Kernels is not null ? "-fused" : ""), ["batch"] = batch, ["seq"] = 1024, ["steps"] = result.Steps,
        ["tokens_per_s"] = median, ["ms_per_step"] = 1000.0 * batch * encoded.Average() / median, ["run_s"] = seconds,
        ["real_tokens"] = encoded.Sum(), ["padding_share"] = 1 - (double)encoded.Sum() / padded, ["final_loss"] = result.TrainLosses[^1],
    }.ToJsonString());
}

sealed class SpeedObserver : ITrainingObserver
{
    public List<double> Rates { get; } = [];

    public void OnProgress(TrainingProgress p) => Rates.Add(p.TokensPerSecond);
}

sealed class ConsoleObserver : ITrainingObserver
{
    public void OnProgress(TrainingProgress p)
    {
        if (p.Step % 8 == 0) Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"step {p.Step}/{p.TotalSteps} loss {p.TrainLoss:F4} lr {p.LearningRate:E2} gnorm {p.GradNorm:F3} {p.TokensPerSecond:F0} tok/s"));
    }

    public void OnEvaluation(EvaluationResult e) => Console.WriteLine($"eval {e}");

    public void OnCheckpoint(CheckpointInfo c) => Console.WriteLine($"checkpoint {c.Step} {c.Directory}");
}

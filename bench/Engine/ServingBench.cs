using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using AspireTune.Engine.Generation;
using AspireTune.Engine.Models;
using static TorchSharp.torch;

/// <summary>
/// Serving throughput (issue 15): the same fixed-length requests (greedy, no end-of-text stop) through the engine's
/// continuous batching and through the one-request-at-a-time generator that served before it.
///   serve --device cuda|cpu --model MODEL_DIR | --shape S --prompt N --new N --concurrency C [--rounds R] [--sequential 1]
/// C clients each send R requests back to back (C x R requests in all); --sequential 1 runs all of them one after
/// another through TextGenerator instead. Prints one JSON line: generated tokens per second of wall time.
/// </summary>
static class ServingBench
{
    public static void Run(CausalLm model, Func<string, string, string> arg)
    {
        int Int(string name, int fallback) => int.Parse(arg(name, fallback.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);
        int promptLength = Int("prompt", 32), newTokens = Int("new", 128), clients = Int("concurrency", 8), rounds = Int("rounds", 1);
        var sequential = arg("sequential", "0") == "1";
        var vocab = model.Config.VocabSize;
        List<int> Prompt(int client, int round) =>
            [.. Enumerable.Range(0, promptLength).Select(i => (i * 97 + 13 + client * 31 + round * 7919) % vocab)];
        var options = new GenerationOptions { MaxTokens = newTokens, StopAtEos = false };
        var requests = clients * rounds;

        using var batched = new BatchedGenerator(model, new BatchingOptions
        {
            KvCacheTokens = Math.Max(4096, clients * (promptLength + newTokens)),
            MaxBatch = Math.Max(64, clients),
        });
        var single = new TextGenerator(model);
        // Warm-up: the first forward passes of each batch shape plan their kernels.
        if (sequential) single.Generate(Prompt(0, 0), options with { MaxTokens = 4 });
        else Task.WaitAll([.. Enumerable.Range(0, clients).Select(c => batched.GenerateAsync(Prompt(c, 0), options with { MaxTokens = 4 }))]);

        var tokens = 0L;
        var firstIds = new List<int>();
        var sw = Stopwatch.StartNew();
        if (sequential)
        {
            for (var r = 0; r < rounds; r++)
                for (var c = 0; c < clients; c++)
                {
                    var result = single.Generate(Prompt(c, r), options);
                    tokens += result.Tokens.Count;
                    if (c == 0 && r == 0) firstIds.AddRange(result.Tokens.Select(t => t.Id));
                }
        }
        else
        {
            var all = Enumerable.Range(0, clients).Select(async c =>
            {
                var n = 0L;
                for (var r = 0; r < rounds; r++)
                {
                    var result = await batched.GenerateAsync(Prompt(c, r), options);
                    n += result.Tokens.Count;
                    if (c == 0 && r == 0) lock (firstIds) firstIds.AddRange(result.Tokens.Select(t => t.Id));
                }
                return n;
            }).ToArray();
            tokens = Task.WhenAll(all).GetAwaiter().GetResult().Sum();
        }
        var seconds = sw.Elapsed.TotalSeconds;
        Console.WriteLine(new JsonObject
        {
            ["impl"] = sequential ? "aspiretune-one-at-a-time" : $"aspiretune-serve-c{clients}",
            ["concurrency"] = sequential ? 1 : clients, ["requests"] = requests, ["prompt"] = promptLength, ["new_tokens"] = newTokens,
            ["tokens"] = tokens, ["seconds"] = seconds, ["tokens_per_s"] = tokens / seconds,
            ["ms_per_token"] = 1000 * seconds / tokens, ["ms_per_step"] = sequential ? 1000 * seconds / tokens : 1000 * seconds * clients / tokens,
            ["peak_batch"] = sequential ? 1 : batched.PeakBatch, ["decode_steps"] = batched.DecodeSteps,
            ["first_ids"] = new JsonArray([.. firstIds.Take(8).Select(i => (JsonNode)i)]),
            // Client 0's first request: the prompt bench generate uses, so the tokens must be those.
            ["ids"] = new JsonArray([.. firstIds.Select(i => (JsonNode)i)]),
        }.ToJsonString());
    }
}

using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using AspireTune.ServiceDefaults;
using MassTransit;

namespace AspireTune.Platform.Tests;

/// <summary>Names built from ids stay unique when the ids are sequential (MassTransit's NewId) and made back to back.</summary>
public sealed class UniqueIdTests
{
    [Fact]
    public void CompactId_SequentialIdsMadeBackToBack_AreDistinctAndDecodeToTheirGuid()
    {
        var ids = Enumerable.Range(0, 50_000).Select(_ => NewId.NextGuid()).ToList();

        var encoded = ids.Select(CompactId.Encode).ToList();

        encoded.Should().OnlyHaveUniqueItems().And.OnlyContain(e => e.Length == CompactId.Length && e.All(c => char.IsAsciiDigit(c) || char.IsAsciiLetterLower(c)));
        // What the ids used to be cut to: the leading hex digits of sequential ids are shared.
        ids.Select(i => i.ToString("N")[..12]).Distinct().Count().Should().BeLessThan(ids.Count / 2);
        for (var i = 0; i < ids.Count; i += 997)
            (CompactId.TryDecode(encoded[i], out var back) ? back : Guid.Empty).Should().Be(ids[i]);
        CompactId.Encode(Guid.Empty).Should().Be(new string('0', 26));
        CompactId.TryDecode("zzzzzzzzzzzzzzzzzzzzzzzzzz", out _).Should().BeFalse("130 bits do not fit a Guid");
        CompactId.TryDecode("0000000000000000000000000i", out _).Should().BeFalse("i is not in the alphabet");
    }

    [Fact]
    public async Task Experiments_StartedBackToBack_GetTheirOwnCollectionsPromptsJobsCheckpointsAndModels()
    {
        var ct = TestContext.Current.CancellationToken;
        var (app, http) = await EmbeddedExperimentTests.StartEmbeddedAsync(TestSupport.TestInfrastructure.TempDataFolder("embedded-ids"),
            "--Comparison:FineTuningHyperparameters:n_epochs=1",
            "--Comparison:FineTuningHyperparameters:batch_size=16",
            "--Comparison:FineTuningHyperparameters:max_seq_len=1024",
            "--Comparison:FineTuningHyperparameters:checkpoint_interval=2",
            "--Comparison:FineTuningHyperparameters:eval_interval=2");
        await using var _ = app;
        var dataset = string.Join('\n', (await File.ReadAllLinesAsync(EmbeddedExperimentTests.SamplePath, ct)).Where((_, i) => i % 5 == 0));

        var ids = new List<Guid>();
        foreach (var name in new[] { "first", "second" })
        {
            var response = await http.PostAsJsonAsync("api/experiments", new { name, dataset, candidates = new[] { "fine-tuned", "knn" } }, ct);
            response.StatusCode.Should().Be(HttpStatusCode.Accepted, await response.Content.ReadAsStringAsync(ct));
            ids.Add((await response.Content.ReadFromJsonAsync<JsonObject>(ct))!["id"]!.GetValue<Guid>());
        }
        var experiments = new List<JsonObject>();
        foreach (var id in ids)
            experiments.Add(await EmbeddedExperimentTests.WaitForExperimentAsync(http, id, TimeSpan.FromMinutes(5)));

        experiments.Should().OnlyContain(e => e["status"]!.GetValue<string>() == "succeeded", string.Join('\n', experiments.Select(e => e.ToJsonString())));
        var collections = (await http.GetFromJsonAsync<JsonArray>("api/retrieval/collections", ct))!.Select(c => c!["name"]!.GetValue<string>()).ToList();
        collections.Should().HaveCount(2).And.OnlyHaveUniqueItems();
        var prompts = (await http.GetFromJsonAsync<JsonArray>("api/evaluation/prompts", ct))!.Select(p => p!["name"]!.GetValue<string>()).ToList();
        prompts.Should().HaveCount(2).And.OnlyHaveUniqueItems();

        var jobs = (await http.GetFromJsonAsync<JsonObject>("api/fine-tuning/jobs", ct))!["data"]!.AsArray();
        jobs.Should().HaveCount(2);
        var models = jobs.Select(j => j!["fine_tuned_model"]!.GetValue<string>()).ToList();
        models.Should().OnlyHaveUniqueItems();
        var checkpoints = new List<string>();
        foreach (var job in jobs)
        {
            var rows = (await http.GetFromJsonAsync<JsonObject>($"api/fine-tuning/jobs/{job!["id"]!.GetValue<string>()}/checkpoints", ct))!["data"]!.AsArray();
            rows.Should().NotBeEmpty("every job records its own checkpoints");
            checkpoints.AddRange(rows.Select(r => r!["id"]!.GetValue<string>()));
        }
        checkpoints.Should().OnlyHaveUniqueItems();

        // Each experiment evaluated the model its own job trained, not the other one's.
        var evaluated = experiments.Select(e => e["candidates"]!.AsArray().Single(c => c!["kind"]!.GetValue<string>() == "fine-tuned")!["modelEndpoint"]!.GetValue<string>()).ToList();
        evaluated.Should().OnlyHaveUniqueItems();
        foreach (var (endpoint, model) in evaluated.Order().Zip(models.Select(m => "aspiretune-" + m.Replace(':', '-')).Order()))
            endpoint.Should().Be(model);
    }
}

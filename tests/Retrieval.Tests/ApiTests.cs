using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace AspireTune.Retrieval.Tests;

public class ApiTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<JsonNode> Json(HttpResponseMessage response) => JsonNode.Parse(await response.Content.ReadAsStringAsync(Ct))!;

    private static async Task IngestPassagesAsync(HttpClient client, string collection)
    {
        var response = await client.PostAsJsonAsync($"/api/retrieval/collections/{collection}/documents", new
        {
            documents = Corpus.Passages.Select(p => new { id = p.Id, text = p.Text, format = "markdown", metadata = new { source = p.Id, kind = "manual" } }),
            chunkTokens = 64,
            chunkOverlapTokens = 8,
        }, Ct);
        response.StatusCode.Should().Be(HttpStatusCode.OK, await response.Content.ReadAsStringAsync(Ct));
    }

    [Fact]
    public async Task Neighbors_IngestedCorpus_FindsTheExpectedPassage()
    {
        await using var host = new RetrievalHost();
        var client = host.CreateClient();
        (await host.CreateCollectionAsync("kb")).StatusCode.Should().Be(HttpStatusCode.Created);
        await IngestPassagesAsync(client, "kb");

        foreach (var (query, expected) in new[]
        {
            ("which queue gets a command and how are events published to subscribers?", "rabbitmq"),
            ("approximate nearest neighbour graph recall efSearch", "hnsw"),
            ("early stopping on validation loss when training a smaller model", "finetune"),
        })
        {
            foreach (var mode in new[] { "dense", "hybrid" })
            {
                var response = await client.PostAsJsonAsync("/api/retrieval/collections/kb/neighbors", new { text = query, k = 2, mode }, Ct);
                response.StatusCode.Should().Be(HttpStatusCode.OK);
                var body = await Json(response);
                body["collection"]!.GetValue<string>().Should().Be("kb");
                var first = body["neighbors"]![0]!;
                first["metadata"]!["source"]!.GetValue<string>().Should().Be(expected, $"'{query}' in {mode} mode");
                first["id"]!.GetValue<string>().Should().NotBeEmpty();
                first["score"]!.GetValue<double>().Should().BePositive();
                first["label"].Should().BeNull();
                // The shape the Evaluation service codes against, member for member.
                first.AsObject().Select(p => p.Key).Should().Equal("id", "score", "text", "label", "metadata");
                body.AsObject().Select(p => p.Key).Should().Equal("collection", "neighbors");
            }
        }
    }

    [Fact]
    public async Task Neighbors_FilterAndMmr_RestrictAndDiversify()
    {
        await using var host = new RetrievalHost();
        var client = host.CreateClient();
        await host.CreateCollectionAsync("kb");
        await IngestPassagesAsync(client, "kb");

        var filtered = await Json(await client.PostAsJsonAsync("/api/retrieval/collections/kb/neighbors",
            new { text = "message queue events", k = 4, filter = new { source = "postgres" } }, Ct));
        filtered["neighbors"]!.AsArray().Should().NotBeEmpty()
            .And.OnlyContain(n => n!["metadata"]!["source"]!.GetValue<string>() == "postgres");

        var mmr = await Json(await client.PostAsJsonAsync("/api/retrieval/collections/kb/neighbors",
            new { text = "message queue events", k = 3, mmr = true, mmrLambda = 0.3 }, Ct));
        mmr["neighbors"]!.AsArray().Select(n => n!["metadata"]!["source"]!.GetValue<string>()).Should().OnlyHaveUniqueItems().And.HaveCount(3);
    }

    [Fact]
    public async Task Neighbors_BadRequests_AnswerPreciseProblems()
    {
        await using var host = new RetrievalHost();
        var client = host.CreateClient();
        await host.CreateCollectionAsync("kb");
        await IngestPassagesAsync(client, "kb");

        var unknown = await client.PostAsJsonAsync("/api/retrieval/collections/nope/neighbors", new { text = "x" }, Ct);
        unknown.StatusCode.Should().Be(HttpStatusCode.NotFound);
        (await Json(unknown))["detail"]!.GetValue<string>().Should().Contain("'nope' does not exist");

        var badField = await client.PostAsJsonAsync("/api/retrieval/collections/kb/neighbors", new { text = "x", filter = new { colour = "red" } }, Ct);
        badField.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        var problem = await Json(badField);
        problem["errors"]!["filter.colour"]![0]!.GetValue<string>().Should().Contain("no metadata field 'colour'").And.Contain("kind, source");

        var badK = await client.PostAsJsonAsync("/api/retrieval/collections/kb/neighbors", new { text = "x", k = 0 }, Ct);
        badK.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await Json(badK))["errors"]!["k"].Should().NotBeNull();

        var badMode = await client.PostAsync("/api/retrieval/collections/kb/neighbors", JsonContent.Create(JsonNode.Parse("""{"text":"x","mode":"fuzzy"}""")), Ct);
        badMode.StatusCode.Should().Be(HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Ingest_BadDocuments_RefusedWithoutChangingTheCollection()
    {
        await using var host = new RetrievalHost(settings: new Dictionary<string, string> { ["Retrieval:MaxUploadBytes"] = "4096" });
        var client = host.CreateClient();
        await host.CreateCollectionAsync("kb");

        var empty = await client.PostAsJsonAsync("/api/retrieval/collections/kb/documents", new { documents = new[] { new { id = "a", text = "fine" }, new { id = "b", text = "  " } } }, Ct);
        empty.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await Json(empty))["errors"]!["documents[1].text"]![0]!.GetValue<string>().Should().Contain("'b' is empty");

        var badLine = await client.PostAsJsonAsync("/api/retrieval/collections/kb/documents", new { documents = new[] { new { id = "data.jsonl", text = "{\"text\":\"ok\"}\n{not json", format = "jsonl" } } }, Ct);
        badLine.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await Json(badLine))["detail"]!.GetValue<string>().Should().Contain("line 2");

        var big = await client.PostAsJsonAsync("/api/retrieval/collections/kb/documents", new { documents = new[] { new { id = "big", text = new string('x', 8000) } } }, Ct);
        big.StatusCode.Should().Be(HttpStatusCode.RequestEntityTooLarge);
        (await Json(big))["detail"]!.GetValue<string>().Should().Contain("limit is 4,096 bytes");

        var info = await Json(await client.GetAsync("/api/retrieval/collections/kb", Ct));
        info["points"]!.GetValue<long>().Should().Be(0);
    }

    [Fact]
    public async Task Ingest_SameIdTwice_SkipsUnchangedAndReplacesChanged()
    {
        await using var host = new RetrievalHost();
        var client = host.CreateClient();
        await host.CreateCollectionAsync("kb");
        async Task<JsonNode> Ingest(string text) => await Json(await client.PostAsJsonAsync("/api/retrieval/collections/kb/documents", new { documents = new[] { new { id = "note", text } } }, Ct));

        (await Ingest("The cafeteria serves lentil soup on Mondays."))["documents"]!.GetValue<int>().Should().Be(1);
        var again = await Ingest("The cafeteria serves lentil soup on Mondays.");
        again["unchanged"]!.GetValue<int>().Should().Be(1);
        again["points"]!.GetValue<long>().Should().Be(1);
        await Ingest("The cafeteria serves pumpkin curry on Fridays.");

        var found = await Json(await client.PostAsJsonAsync("/api/retrieval/collections/kb/neighbors", new { text = "lentil soup", k = 5 }, Ct));
        found["neighbors"]!.AsArray().Should().ContainSingle()
            .Which!["text"]!.GetValue<string>().Should().Contain("pumpkin curry");
    }

    [Fact]
    public async Task Prompt_Input_ContainsItsNearestLabelledExamplesWithinBudget()
    {
        await using var host = new RetrievalHost();
        var client = host.CreateClient();
        await host.CreateCollectionAsync("examples");
        var examples = Corpus.LabelledSentences(80, seed: 5);
        (await client.PostAsJsonAsync("/api/retrieval/collections/examples/examples",
            new { examples = examples.Select(e => new { input = e.Text, expected = e.Label }) }, Ct)).EnsureSuccessStatusCode();
        var input = "the coach praised the striker after the playoff match";

        var neighbors = await Json(await client.PostAsJsonAsync("/api/retrieval/collections/examples/neighbors", new { text = input, k = 3 }, Ct));
        var response = await client.PostAsJsonAsync("/api/retrieval/collections/examples/prompt",
            new { input, k = 3, template = "Classify the topic.\n{{examples}}\nInput: {{input}}\nOutput:", tokenBudget = 400 }, Ct);

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        var body = await Json(response);
        var prompt = body["prompt"]!.GetValue<string>();
        prompt.Should().StartWith("Classify the topic.").And.EndWith($"Input: {input}\nOutput:");
        foreach (var n in neighbors["neighbors"]!.AsArray())
            prompt.Should().Contain($"Input: {n!["text"]!.GetValue<string>()}\nOutput: {n["label"]!.GetValue<string>()}");
        body["examples"]!.AsArray().Should().HaveCount(3);
        body["tokens"]!.GetValue<int>().Should().BeInRange(1, 400);

        var tight = await Json(await client.PostAsJsonAsync("/api/retrieval/collections/examples/prompt", new { input, k = 3, tokenBudget = 40 }, Ct));
        tight["leftOut"]!.GetValue<int>().Should().BePositive();
        tight["tokens"]!.GetValue<int>().Should().BeLessThanOrEqualTo(40);
    }

    [Fact]
    public async Task Classify_HeldOutSplit_BeatsChanceByAWideMargin()
    {
        await using var host = new RetrievalHost();
        var client = host.CreateClient();
        await host.CreateCollectionAsync("topics");
        var data = Corpus.LabelledSentences(240, seed: 11);
        var train = data.Take(200).ToList();
        var test = data.Skip(200).ToList();
        (await client.PostAsJsonAsync("/api/retrieval/collections/topics/examples",
            new { examples = train.Select(e => new { input = e.Text, expected = e.Label }) }, Ct)).EnsureSuccessStatusCode();

        var correct = 0;
        foreach (var (text, label) in test)
        {
            var response = await client.PostAsJsonAsync("/api/retrieval/collections/topics/classify", new { text, k = 7 }, Ct);
            response.StatusCode.Should().Be(HttpStatusCode.OK);
            var body = await Json(response);
            if (body["label"]!.GetValue<string>() == label)
                correct++;
        }
        var accuracy = correct / (double)test.Count;
        // Four balanced classes: chance is 0.25. The margin asked of the baseline: at least 0.45 above chance.
        accuracy.Should().BeGreaterThanOrEqualTo(0.70, $"kNN accuracy {accuracy:P0} on {test.Count} held-out sentences");
        TestContext.Current.TestOutputHelper?.WriteLine($"kNN held-out accuracy {accuracy:P1} (chance 25%)");
    }

    [Fact]
    public async Task Evaluate_LabelledQueries_ReportsHitRateMrrAndNdcg()
    {
        await using var host = new RetrievalHost();
        var client = host.CreateClient();
        await host.CreateCollectionAsync("kb");
        await IngestPassagesAsync(client, "kb");

        var response = await client.PostAsJsonAsync("/api/retrieval/collections/kb/evaluate", new
        {
            k = 3,
            queries = new object[]
            {
                new { text = "durable committed transactions and replicas", relevantIds = new[] { "postgres" } },
                new { text = "byte pair encoding vocabulary", relevantIds = new[] { "tokenizer" } },
                new { text = "zebra migration across the savannah", relevantIds = new[] { "hnsw" } },
            },
        }, Ct);

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        var body = await Json(response);
        body["queries"]!.GetValue<int>().Should().Be(3);
        body["hitRate"]!.GetValue<double>().Should().BeInRange(2 / 3.0, 1);
        body["mrr"]!.GetValue<double>().Should().BeInRange(0.5, 1);
        body["ndcg"]!.GetValue<double>().Should().BeInRange(0.5, 1);
    }

    [Fact]
    public async Task EmbeddedIndex_HostRestart_ServesTheSameData()
    {
        var folder = AspireTune.TestSupport.TestInfrastructure.TempDataFolder("retrieval-restart");
        string before;
        await using (var first = new RetrievalHost(folder))
        {
            var client = first.CreateClient();
            await first.CreateCollectionAsync("kb");
            await IngestPassagesAsync(client, "kb");
            var response = await client.PostAsJsonAsync("/api/retrieval/collections/kb/neighbors", new { text = "byte pair encoding", k = 3 }, Ct);
            before = await response.Content.ReadAsStringAsync(Ct);
        }
        await using var second = new RetrievalHost(folder);
        var after = await second.CreateClient().PostAsJsonAsync("/api/retrieval/collections/kb/neighbors", new { text = "byte pair encoding", k = 3 }, Ct);

        after.StatusCode.Should().Be(HttpStatusCode.OK);
        (await after.Content.ReadAsStringAsync(Ct)).Should().Be(before);
        Directory.GetFiles(Path.Combine(folder, "retrieval-index")).Should().Contain(f => f.EndsWith("kb.hnsw"));
    }

    [Fact]
    public async Task Collections_CreateListDelete_AndConflicts()
    {
        await using var host = new RetrievalHost();
        var client = host.CreateClient();

        (await host.CreateCollectionAsync("Bad Name")).StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await host.CreateCollectionAsync("c1", new { dimensions = 128, distance = "Dot" })).StatusCode.Should().Be(HttpStatusCode.Created);
        (await host.CreateCollectionAsync("c1", new { dimensions = 128, distance = "Dot" })).StatusCode.Should().Be(HttpStatusCode.OK);
        (await host.CreateCollectionAsync("c1", new { dimensions = 64 })).StatusCode.Should().Be(HttpStatusCode.Conflict);
        var hosted = await host.CreateCollectionAsync("c2", new { embeddingModel = "text-embedding-3-small" });
        hosted.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await hosted.Content.ReadAsStringAsync(Ct)).Should().Contain("Retrieval:HostedEmbeddings:Endpoint");

        var list = await client.GetFromJsonAsync<JsonArray>("/api/retrieval/collections", Ct);
        list!.Should().ContainSingle().Which!["dimensions"]!.GetValue<int>().Should().Be(128);
        list[0]!["index"]!.GetValue<string>().Should().Be("embedded");

        (await client.DeleteAsync("/api/retrieval/collections/c1", Ct)).StatusCode.Should().Be(HttpStatusCode.NoContent);
        (await client.GetAsync("/api/retrieval/collections/c1", Ct)).StatusCode.Should().Be(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task OpenApi_Document_DescribesTheRetrievalEndpoints()
    {
        await using var host = new RetrievalHost();
        var document = await host.CreateClient().GetStringAsync("/openapi/v1.json", Ct);
        foreach (var path in new[] { "/neighbors", "/prompt", "/classify", "/evaluate", "/documents", "/examples" })
            document.Should().Contain($"/api/retrieval/collections/{{collection}}{path}");
        document.Should().Contain("tokenBudget").And.Contain("\"hybrid\"");
    }

    [Fact]
    public async Task Ingest_OnPostgreSql_StoresAndFindsLikeOnSqlite()
    {
        await using var host = new RetrievalHost(settings: new Dictionary<string, string>
        {
            ["ConnectionStrings:retrievaldb"] = AspireTune.TestSupport.TestInfrastructure.PostgresDatabase("retrieval"),
        });
        var client = host.CreateClient();
        await host.CreateCollectionAsync("kb");
        await IngestPassagesAsync(client, "kb");
        await IngestPassagesAsync(client, "kb"); // unchanged: skipped

        var hybrid = await Json(await client.PostAsJsonAsync("/api/retrieval/collections/kb/neighbors", new { text = "byte pair encoding vocabulary", k = 1, mode = "hybrid" }, Ct));

        hybrid["neighbors"]![0]!["metadata"]!["source"]!.GetValue<string>().Should().Be("tokenizer");
        (await client.GetFromJsonAsync<JsonObject>("/api/retrieval/collections/kb", Ct))!["documents"]!.GetValue<int>().Should().Be(5);
    }
}

using System.Net;
using System.Net.Http.Json;
using System.Text;
using AspireTune.Contracts.Evaluation;
using AspireTune.Evaluation.Data;
using AspireTune.MockOpenAI;
using Microsoft.Extensions.DependencyInjection;

namespace AspireTune.Evaluation.Tests;

/// <summary>Regression tests for issue 12: which configuration an endpoint may name, and bad input that used to be a 500 or accepted.</summary>
public sealed class BadInputTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    [Fact]
    public async Task CreateEndpoint_SecretOutsideTheSecretsSection_Is400WithTheSameAnswerWhetherOrNotItExists()
    {
        await using var mock = await MockOpenAIServer.StartAsync(configure: o => o.Fallback = "x", ct: Ct);
        await using var host = EvaluationHost.Start(settings: new Dictionary<string, string?>
        {
            ["Platform:DatabasePassword"] = "hunter2-db-password",
            ["Evaluation:Secrets:ok"] = "sk-fine",
        });

        var answers = new List<string>();
        foreach (var name in new[] { "ASPIRETUNE_DATA", "Platform:DatabasePassword", "ConnectionStrings:evaluationdb", "HOME", "Does:Not:Exist" })
        {
            var response = await host.Client.PostAsJsonAsync("/api/evaluation/models",
                new { id = "leak", kind = "OpenAICompatible", baseUrl = mock.BaseUrl, model = "m", apiKeySecret = name }, Ct);
            response.StatusCode.Should().Be(HttpStatusCode.BadRequest, name);
            var problem = System.Text.Json.Nodes.JsonNode.Parse(await response.Content.ReadAsStringAsync(Ct))!;
            answers.Add(problem["errors"]!.ToJsonString().Replace(name, "NAME", StringComparison.Ordinal));
        }

        answers.Distinct().Should().ContainSingle("a refused name must not reveal whether the key exists");
        answers[0].Should().Contain("Evaluation:Secrets").And.NotContain("hunter2");
        (await host.Client.GetStringAsync("/api/evaluation/models", Ct)).Should().Be("[]");
        var allowed = await host.Client.PostAsJsonAsync("/api/evaluation/models",
            new { id = "ok", kind = "OpenAICompatible", baseUrl = mock.BaseUrl, model = "m", apiKeySecret = "Evaluation:Secrets:ok" }, Ct);
        allowed.StatusCode.Should().Be(HttpStatusCode.Created);
        mock.State.Requests.Should().Be(0);
    }

    [Fact]
    public async Task CreateEndpoint_ServiceAccountKey_OnlyByACallerPresentingIt()
    {
        const string serviceKey = "svc-account-key-0123456789abcdef";
        await using var host = EvaluationHost.Start(settings: new Dictionary<string, string?> { ["Authentication:ServiceAccountKey"] = serviceKey });
        object Body(string id) => new { id, kind = "OpenAICompatible", baseUrl = "http://127.0.0.1:9/v1", model = "m", apiKeySecret = "Authentication:ServiceAccountKey" };

        var stranger = await host.Client.PostAsJsonAsync("/api/evaluation/models", Body("stranger"), Ct);
        using var own = new HttpRequestMessage(HttpMethod.Post, "/api/evaluation/models") { Content = JsonContent.Create(Body("served")) };
        own.Headers.Authorization = new("Bearer", serviceKey);
        var service = await host.Client.SendAsync(own, Ct);

        stranger.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        service.StatusCode.Should().Be(HttpStatusCode.Created, await service.Content.ReadAsStringAsync(Ct));
    }

    [Fact]
    public async Task Run_StoredEndpointWithCredentialsInItsUrlOrAForeignSecret_IsNeverCalled()
    {
        await using var mock = await MockOpenAIServer.StartAsync(configure: o => o.Fallback = "x", ct: Ct);
        await using var host = EvaluationHost.Start(settings: new Dictionary<string, string?> { ["Platform:Token"] = "tok-123" });
        // Rows as an older version could store them, before the API refused them.
        await using (var scope = host.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<EvaluationDbContext>();
            var now = DateTimeOffset.UtcNow;
            db.ModelEndpoints.Add(new ModelEndpointEntity { Id = "userinfo", Kind = EndpointKind.OpenAICompatible, BaseUrl = mock.BaseUrl.Replace("http://", "http://user:pass@"), Model = "m", CreatedAt = now, UpdatedAt = now });
            db.ModelEndpoints.Add(new ModelEndpointEntity { Id = "foreign", Kind = EndpointKind.OpenAICompatible, BaseUrl = mock.BaseUrl, Model = "m", ApiKeySecret = "Platform:Token", CreatedAt = now, UpdatedAt = now });
            await db.SaveChangesAsync(Ct);
        }
        await host.AddPromptAsync("p", "{{$input}}");
        var dataset = await host.UploadDatasetAsync("d", EvaluationHost.Jsonl([new { input = "a", expected = "x" }]));

        var run = await host.WaitForRunAsync((await host.StartRunAsync(new { prompts = new[] { "p" }, modelEndpoints = new[] { "userinfo", "foreign" }, dataset = dataset.Sha256 })).Id);

        mock.State.Requests.Should().Be(0);
        var errors = (await host.ResultsAsync(run.Id)).Select(r => r.GetProperty("error").GetString()).ToList();
        errors.Should().Contain(e => e!.Contains("without credentials")).And.Contain(e => e!.Contains("Evaluation:Secrets"));
    }

    [Theory]
    [InlineData("""{"id":"p1","kind":"OpenAI","model":"m","inputPricePerMillion":1e308}""", "inputPricePerMillion")]
    [InlineData("""{"id":"p2","kind":7,"model":"m","baseUrl":"http://127.0.0.1:9/v1"}""", "kind")]
    [InlineData("""{"id":null,"kind":"OpenAI","model":"m"}""", "id")]
    [InlineData("""{"id":"p3","kind":"OpenAI","model":null}""", "model")]
    [InlineData("""{"id":"p4","kind":"OpenAI","model":"m","baseUrl":"http://127.0.0.1:9/v1?api-key=sk-123"}""", "baseUrl")]
    public async Task CreateEndpoint_BadMember_Is400AndStoresNothing(string json, string member)
    {
        await using var host = EvaluationHost.Start();

        var response = await host.Client.PostAsync("/api/evaluation/models", Json(json), Ct);

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await response.Content.ReadAsStringAsync(Ct)).Should().Contain(member);
        (await host.Client.GetStringAsync("/api/evaluation/models", Ct)).Should().Be("[]");
    }

    [Theory]
    [InlineData("""{"prompts":null,"modelEndpoints":["m"],"dataset":"abc"}""", "prompts")]
    [InlineData("""{"prompts":["p"],"modelEndpoints":null,"dataset":"abc"}""", "modelEndpoints")]
    public async Task CreateRun_NullList_Is400(string json, string member)
    {
        await using var host = EvaluationHost.Start();

        var response = await host.Client.PostAsync("/api/evaluation/runs", Json(json), Ct);

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await response.Content.ReadAsStringAsync(Ct)).Should().Contain(member);
    }

    [Theory]
    [InlineData("Classify {{$input")]
    [InlineData("Classify {{$input}} given {{$examples")]
    public async Task CreatePrompt_UnclosedBlock_Is400WithTheOffset(string template)
    {
        await using var host = EvaluationHost.Start();

        var response = await host.Client.PostAsJsonAsync("/api/evaluation/prompts", new { name = "broken", template }, Ct);

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await response.Content.ReadAsStringAsync(Ct)).Should().Contain("never closed").And.Contain($"offset {template.LastIndexOf("{{", StringComparison.Ordinal)}");
        (await host.Client.GetAsync("/api/evaluation/prompts/broken", Ct)).StatusCode.Should().Be(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task UploadDataset_LineNotUtf8_Is400NamingTheLine()
    {
        await using var host = EvaluationHost.Start();
        var bytes = Encoding.UTF8.GetBytes("{\"input\":\"fine\",\"expected\":\"a\"}\n{\"input\":\"bad ").Concat(new byte[] { 0xFF, 0xFE }).Concat(Encoding.UTF8.GetBytes("\",\"expected\":\"b\"}\n")).ToArray();

        var response = await host.Client.PostAsync("/api/evaluation/datasets?name=latin1", new ByteArrayContent(bytes), Ct);

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await response.Content.ReadAsStringAsync(Ct)).Should().Contain("line 2").And.Contain("UTF-8");
        (await host.Client.GetStringAsync("/api/evaluation/datasets", Ct)).Should().Be("[]");
    }

    [Fact]
    public async Task UploadDataset_LargerThanTheServerDefault_IsAcceptedUpToTheDocumentedLimit()
    {
        await using var host = EvaluationHost.Start();
        var line = "{\"input\":\"" + new string('a', 1000) + "\",\"expected\":\"b\"}\n";
        var jsonl = string.Concat(Enumerable.Repeat(line, 32 * 1024)); // 32 MiB: above Kestrel's 30 MB default, below Evaluation:MaxDatasetBytes

        var response = await host.Client.PostAsync("/api/evaluation/datasets?name=large", new StringContent(jsonl, Encoding.UTF8, "application/jsonl"), Ct);

        response.StatusCode.Should().Be(HttpStatusCode.Created, await response.Content.ReadAsStringAsync(Ct));
    }

    [Theory]
    [InlineData("bogus")]
    [InlineData("7")]
    public async Task ListRuns_UnknownStatus_Is400(string status)
    {
        await using var host = EvaluationHost.Start();

        var response = await host.Client.GetAsync($"/api/evaluation/runs?status={status}", Ct);

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await response.Content.ReadAsStringAsync(Ct)).Should().Contain("Queued");
    }

    [Fact]
    public async Task UpsertAndCreateEndpoint_ManyAtOnceForOneNewId_NoServerErrorAndOneRow()
    {
        await using var host = EvaluationHost.Start();
        object Body(int i) => new { id = "racy", kind = "OpenAICompatible", baseUrl = "http://127.0.0.1:9/v1", model = $"m{i}" };

        var puts = Enumerable.Range(0, 16).Select(i => host.Client.PutAsJsonAsync("/api/evaluation/models/racy", Body(i), Ct));
        var posts = Enumerable.Range(0, 16).Select(i => host.Client.PostAsJsonAsync("/api/evaluation/models", Body(i), Ct));
        var answers = await Task.WhenAll(puts.Concat(posts));

        answers.Take(16).Should().AllSatisfy(r => r.StatusCode.Should().Be(HttpStatusCode.OK));
        answers.Skip(16).Select(r => r.StatusCode).Should().OnlyContain(c => c == HttpStatusCode.Created || c == HttpStatusCode.Conflict);
        var list = await host.Client.GetFromJsonAsync<List<ModelEndpointResponse>>("/api/evaluation/models", Ct);
        list.Should().ContainSingle(e => e.Id == "racy");
    }

    [Fact]
    public async Task CreateRun_SameRunIdManyAtOnce_OneAcceptedTheRest409()
    {
        await using var host = EvaluationHost.Start();
        (await host.Client.PutAsJsonAsync("/api/evaluation/models/local", new { id = "local", kind = "OpenAICompatible", baseUrl = "http://127.0.0.1:9/v1", model = "m" }, Ct)).EnsureSuccessStatusCode();
        await host.AddPromptAsync("p", "{{$input}}");
        var dataset = await host.UploadDatasetAsync("d", EvaluationHost.Jsonl([new { input = "a", expected = "x" }]));
        var runId = Guid.NewGuid();

        var answers = await Task.WhenAll(Enumerable.Range(0, 12).Select(_ => host.Client.PostAsJsonAsync("/api/evaluation/runs",
            new { runId, prompts = new[] { "p" }, modelEndpoints = new[] { "local" }, dataset = dataset.Sha256 }, Ct)));

        answers.Select(a => a.StatusCode).Should().OnlyContain(c => c == HttpStatusCode.Accepted || c == HttpStatusCode.Conflict);
        answers.Count(a => a.StatusCode == HttpStatusCode.Accepted).Should().Be(1);
    }
}

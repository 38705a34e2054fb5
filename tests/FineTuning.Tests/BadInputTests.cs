using System.IO.Compression;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using AspireTune.Engine.Tokenization;
using AspireTune.FineTuning.Tests.Engine;

namespace AspireTune.FineTuning.Tests;

/// <summary>Regression tests for issue 12: links out of the data folder, reserved names, /v1's error shape and parameters.</summary>
public sealed class BadInputTests : IAsyncLifetime
{
    private const string Key = "v1-reader-key-0123456789";
    private readonly FineTuningFactory _factory = new();
    private HttpClient _http = null!;

    public ValueTask InitializeAsync()
    {
        _http = _factory.CreateClient();
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync() => await _factory.DisposeAsync();

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>A loadable model directory inside the data folder (the committed GPT-2 fixture).</summary>
    private string CopyModel(string name)
    {
        var target = Path.Combine(_factory.DataFolder, "imports", name);
        Directory.CreateDirectory(target);
        foreach (var file in Directory.GetFiles(EngineFixtures.Path_("gpt2-tiny")))
            File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
        return target;
    }

    private static string OutsideSecret()
    {
        var folder = TestSupport.TestInfrastructure.TempDataFolder("outside");
        var secret = Path.Combine(folder, "secret.txt");
        File.WriteAllText(secret, "TOP-SECRET-OUTSIDE-THE-DATA-FOLDER");
        return secret;
    }

    [Fact]
    public async Task ImportModel_DirectoryHoldingALinkOutside_Returns400AndRegistersNothing()
    {
        var directory = CopyModel("linked-file");
        File.CreateSymbolicLink(Path.Combine(directory, "vocab.txt"), OutsideSecret());
        var linkedDir = CopyModel("linked-dir");
        Directory.CreateSymbolicLink(Path.Combine(linkedDir, "extra"), Path.GetDirectoryName(OutsideSecret())!);

        var file = await _http.PostAsJsonAsync("/api/models/import", new { path = "imports/linked-file", name = "linked-file" }, Ct);
        var dir = await _http.PostAsJsonAsync("/api/models/import", new { path = "imports/linked-dir", name = "linked-dir" }, Ct);

        file.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await file.Content.ReadAsStringAsync(Ct)).Should().Contain("vocab.txt").And.Contain("leads out of the data folder");
        dir.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await _http.GetAsync("/api/models/linked-file", Ct)).StatusCode.Should().Be(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task ExportModel_LinkOutsideAddedAfterImport_Returns409WithoutTheFile()
    {
        var directory = CopyModel("later-link");
        var imported = await _http.PostAsJsonAsync("/api/models/import", new { path = "imports/later-link", name = "later-link" }, Ct);
        imported.StatusCode.Should().Be(HttpStatusCode.Created, await imported.Content.ReadAsStringAsync(Ct));
        File.CreateSymbolicLink(Path.Combine(directory, "passwd"), OutsideSecret());

        var export = await _http.GetAsync("/api/models/later-link/export", Ct);

        export.StatusCode.Should().Be(HttpStatusCode.Conflict);
        (await export.Content.ReadAsStringAsync(Ct)).Should().NotContain("TOP-SECRET").And.Contain("passwd");
    }

    [Fact]
    public async Task ImportAndExportModel_HardLinkToAFileOutside_AreRefusedWithoutTheFile()
    {
        var refused = CopyModel("hard-import");
        TestSupport.TestInfrastructure.HardLink(OutsideSecret(), Path.Combine(refused, "merges.txt"));
        var later = CopyModel("hard-export");
        (await _http.PostAsJsonAsync("/api/models/import", new { path = "imports/hard-export", name = "hard-export" }, Ct)).StatusCode.Should().Be(HttpStatusCode.Created);
        TestSupport.TestInfrastructure.HardLink(OutsideSecret(), Path.Combine(later, "shadow"));

        var import = await _http.PostAsJsonAsync("/api/models/import", new { path = "imports/hard-import", name = "hard-import" }, Ct);
        var export = await _http.GetAsync("/api/models/hard-export/export", Ct);

        import.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await import.Content.ReadAsStringAsync(Ct)).Should().Contain("merges.txt").And.Contain("hard link");
        export.StatusCode.Should().Be(HttpStatusCode.Conflict);
        (await export.Content.ReadAsStringAsync(Ct)).Should().NotContain("TOP-SECRET").And.Contain("shadow");
    }

    [Fact]
    public async Task ExportModel_LinkInsideTheDataFolder_IsFollowed()
    {
        var directory = CopyModel("inner-link");
        var shared = Path.Combine(_factory.DataFolder, "shared-notes.txt");
        await File.WriteAllTextAsync(shared, "inside", Ct);
        File.CreateSymbolicLink(Path.Combine(directory, "notes.txt"), shared);
        (await _http.PostAsJsonAsync("/api/models/import", new { path = "imports/inner-link", name = "inner-link" }, Ct)).StatusCode.Should().Be(HttpStatusCode.Created);

        var bytes = await _http.GetByteArrayAsync("/api/models/inner-link/export", Ct);

        using var zip = new ZipArchive(new MemoryStream(bytes));
        zip.Entries.Select(e => e.FullName).Should().Contain(["config.json", "model.safetensors", "notes.txt"]);
        using var notes = new StreamReader(zip.GetEntry("notes.txt")!.Open());
        (await notes.ReadToEndAsync(Ct)).Should().Be("inside");
    }

    [Fact]
    public async Task ImportModel_FineTunedPrefix_Returns400()
    {
        CopyModel("impostor");

        var response = await _http.PostAsJsonAsync("/api/models/import", new { path = "imports/impostor", name = "ft:aspiretune-tiny:mine:12345678" }, Ct);

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await response.Content.ReadAsStringAsync(Ct)).Should().Contain("reserved");
    }

    [Fact]
    public async Task ImportModel_NulInPath_Returns400()
    {
        var response = await _http.PostAsync("/api/models/import", new StringContent("""{"path":"imports/a\u0000b","name":"nul"}""", Encoding.UTF8, "application/json"), Ct);

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await response.Content.ReadAsStringAsync(Ct)).Should().Contain("NUL");
    }

    [Theory]
    [InlineData("/v1/chat/completions", """{"model":"aspiretune-tiny","messages":[{"role":"user","content":"x"}],"model":"other"}""", "")]
    [InlineData("/v1/chat/completions", """{"model":"aspiretune-tiny","messages":[{"role":"user","content":"x"}],"frequency_penalty":0.5}""", "frequency_penalty")]
    [InlineData("/v1/chat/completions", """{"model":"aspiretune-tiny","messages":[{"role":"user","content":"x"}],"top_k":5}""", "top_k")]
    [InlineData("/v1/completions", """{"model":"aspiretune-tiny","prompt":"x","suffix":"tail"}""", "suffix")]
    [InlineData("/v1/completions", """{"model":"aspiretune-tiny","prompt":"x","functions":[]}""", "functions")]
    public async Task V1_DuplicateOrUnsupportedParameter_Returns400OpenAiError(string path, string json, string param)
    {
        var response = await _http.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"), Ct);

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        var error = (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error");
        error.GetProperty("type").GetString().Should().Be("invalid_request_error");
        if (param.Length > 0)
            error.GetProperty("param").GetString().Should().Be(param);
        else
            error.GetProperty("message").GetString().Should().Contain("model");
    }

    [Fact]
    public async Task V1_InvalidUtf8_Returns400OpenAiErrorWithTheOffset()
    {
        var prefix = Encoding.UTF8.GetBytes("""{"model":"aspiretune-tiny","messages":[{"role":"user","content":"ab""");
        var bytes = prefix.Concat(new byte[] { 0xC3, 0x28 }).Concat(Encoding.UTF8.GetBytes("\"}]}")).ToArray();
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new("application/json");

        var response = await _http.PostAsync("/v1/chat/completions", content, Ct);

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        var error = (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error");
        error.GetProperty("message").GetString().Should().Contain("UTF-8").And.Contain($"offset {prefix.Length}");
    }

    [Fact]
    public async Task V1_WithoutOrWithWrongKey_Returns401OpenAiErrorAndWwwAuthenticate()
    {
        await using var secured = new FineTuningFactory(new Dictionary<string, string?>
        {
            ["Authentication:ApiKeys:Accounts:0:Name"] = "reader",
            ["Authentication:ApiKeys:Accounts:0:KeyHash"] = ServiceDefaults.Security.ApiKeyAuthenticationHandler.Hash(Key),
            ["Authentication:ApiKeys:Accounts:0:Roles:0"] = "reader",
        });
        var client = secured.CreateClient();

        foreach (var bearer in new[] { null, "wrong-key" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
            if (bearer is not null)
                request.Headers.Authorization = new("Bearer", bearer);
            var response = await client.SendAsync(request, Ct);

            response.StatusCode.Should().Be(HttpStatusCode.Unauthorized);
            response.Headers.WwwAuthenticate.Should().ContainSingle(h => h.Scheme == "Bearer");
            var error = (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error");
            error.GetProperty("code").GetString().Should().Be("invalid_api_key");
        }
        using var ok = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        ok.Headers.Authorization = new("Bearer", Key);
        (await client.SendAsync(ok, Ct)).StatusCode.Should().Be(HttpStatusCode.OK);
    }

    [Fact]
    public async Task ListJobs_UnknownStatus_Returns400()
    {
        var response = await _http.GetAsync("/api/fine-tuning/jobs?status=bogus", Ct);

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await response.Content.ReadAsStringAsync(Ct)).Should().Contain("validating_files");
    }

    [Fact]
    public async Task Encode_MegabyteWithoutSpaces_IsLinearAndRoundTrips()
    {
        var tokenizer = ByteLevelBpeTokenizer.TryLoad(EngineFixtures.Path_("gpt2-tiny"))!;
        var text = "start " + new string('k', 1024 * 1024) + " end";

        // Not a speed assertion: a hang (the quadratic BPE took minutes) fails here instead of stalling the suite.
        var ids = await Task.Run(() => tokenizer.Encode(text), Ct).WaitAsync(TimeSpan.FromSeconds(60), Ct);

        tokenizer.Decode(ids).Should().Be(text);
    }
}

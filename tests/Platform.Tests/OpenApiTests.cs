using System.Net.Http.Json;
using System.Text.Json.Nodes;

namespace AspireTune.Platform.Tests;

public sealed class OpenApiTests
{
    [Fact]
    public async Task EmbeddedHost_PublishesOneDocumentWithEveryServiceAndItsSchemas()
    {
        var (app, http) = await EmbeddedExperimentTests.StartEmbeddedAsync(TestSupport.TestInfrastructure.TempDataFolder("openapi"));
        await using var _ = app;

        var document = (await http.GetFromJsonAsync<JsonObject>("openapi/v1.json", TestContext.Current.CancellationToken))!;

        var paths = document["paths"]!.AsObject().Select(p => p.Key).ToList();
        paths.Should().Contain(p => p.StartsWith("/api/experiments", StringComparison.Ordinal))
            .And.Contain(p => p.StartsWith("/api/evaluation/", StringComparison.Ordinal))
            .And.Contain(p => p.StartsWith("/api/retrieval/", StringComparison.Ordinal))
            .And.Contain(p => p.StartsWith("/api/fine-tuning/", StringComparison.Ordinal))
            .And.Contain(p => p.StartsWith("/v1/", StringComparison.Ordinal));
        var schemas = document["components"]!["schemas"]!.AsObject().Select(s => s.Key).ToList();
        schemas.Should().Contain("CreateExperimentRequest").And.Contain("ExperimentView");
        document["components"]!["securitySchemes"]!["Bearer"]!["scheme"]!.GetValue<string>().Should().Be("bearer");
    }
}

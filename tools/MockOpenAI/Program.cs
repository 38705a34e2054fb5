using AspireTune.MockOpenAI;

// As an exe: `aspiretune-mock-openai --urls http://127.0.0.1:5999 --MockOpenAI:LatencyMs 50`.
var builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.SetMinimumLevel(LogLevel.Warning);
builder.Services.AddOptions<MockOpenAIOptions>().BindConfiguration(MockOpenAIOptions.SectionName);
var app = MockOpenAIServer.Build(builder);
var urls = app.Urls;
await app.StartAsync();
Console.WriteLine($"MockOpenAI listening on {string.Join(", ", urls)}");
await app.WaitForShutdownAsync();

using AspireTune.ServiceDefaults.Messaging;

namespace AspireTune.Retrieval;

public class Program
{
    public static void Main(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
        builder.AddServiceDefaults();
        builder.AddRetrieval();
        builder.AddMessaging();

        var app = builder.Build();
        app.MapDefaultEndpoints();
        app.MapRetrieval();
        app.Run();
    }
}

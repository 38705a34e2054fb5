using AspireTune.ServiceDefaults.Messaging;

namespace AspireTune.FineTuning;

public class Program
{
    public static void Main(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
        builder.AddServiceDefaults();
        builder.AddFineTuning();
        builder.AddMessaging();

        var app = builder.Build();
        app.MapDefaultEndpoints();
        app.MapFineTuning();
        app.Run();
    }
}

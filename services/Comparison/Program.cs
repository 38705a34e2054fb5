using AspireTune.ServiceDefaults.Messaging;

namespace AspireTune.Comparison;

public class Program
{
    public static void Main(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
        builder.AddServiceDefaults();
        builder.AddComparison();
        builder.AddMessaging();

        var app = builder.Build();
        app.MapDefaultEndpoints();
        app.MapComparison();
        app.Run();
    }
}

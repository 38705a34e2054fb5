using AspireTune.ServiceDefaults.Messaging;

namespace AspireTune.Evaluation;

public class Program
{
    public static void Main(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
        builder.AddServiceDefaults();
        builder.AddEvaluation();
        builder.AddMessaging();

        var app = builder.Build();
        app.MapDefaultEndpoints();
        app.MapEvaluation();
        app.Run();
    }
}

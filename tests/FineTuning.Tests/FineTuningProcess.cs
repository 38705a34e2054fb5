using AspireTune.TestSupport;

namespace AspireTune.FineTuning.Tests;

/// <summary>The FineTuning service's own executable as a child process: PostgreSQL, the tiny model, and the in-memory bus unless the environment names a broker.</summary>
internal static class FineTuningProcess
{
    public static ServiceProcess Start(string data, string database, IReadOnlyDictionary<string, string?>? environment = null)
    {
        var settings = FineTuningFactory.Defaults(data);
        settings["ConnectionStrings:finetuningdb"] = database;
        foreach (var (key, value) in environment ?? new Dictionary<string, string?>())
            settings[key] = value;
        return ServiceProcess.Start("FineTuning", settings);
    }
}

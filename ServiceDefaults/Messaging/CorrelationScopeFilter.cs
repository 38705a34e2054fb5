using System.Collections.Concurrent;
using System.Diagnostics;
using System.Reflection;
using MassTransit;
using Microsoft.Extensions.Logging;

namespace AspireTune.ServiceDefaults.Messaging;

/// <summary>
/// Every consumed message opens a logging scope with the ids it carries (<c>ExperimentId</c>, <c>JobId</c>, <c>RunId</c>,
/// <c>RequestId</c>), and tags the consume span with them, so operators find an experiment's logs and spans by its id.
/// </summary>
public sealed class CorrelationScopeFilter<T>(ILogger<CorrelationScopeFilter<T>> logger) : IFilter<ConsumeContext<T>> where T : class
{
    public async Task Send(ConsumeContext<T> context, IPipe<ConsumeContext<T>> next)
    {
        var ids = CorrelationIds.Of(context.Message);
        if (ids.Count == 0)
        {
            await next.Send(context);
            return;
        }
        foreach (var (name, value) in ids)
            Activity.Current?.SetTag(CorrelationIds.TagName(name), value);
        using (logger.BeginScope(ids))
            await next.Send(context);
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("correlation-scope");
}

/// <summary>The correlation ids of a message, read once per message type.</summary>
public static class CorrelationIds
{
    private static readonly string[] Names = ["ExperimentId", "JobId", "RunId", "RequestId"];
    private static readonly ConcurrentDictionary<Type, PropertyInfo[]> Properties = new();

    public static Dictionary<string, object?> Of(object message)
    {
        var properties = Properties.GetOrAdd(message.GetType(), type => Names
            .Select(n => type.GetProperty(n, BindingFlags.Public | BindingFlags.Instance))
            .Where(p => p is not null && (p.PropertyType == typeof(Guid) || p.PropertyType == typeof(Guid?)))
            .ToArray()!);
        var ids = new Dictionary<string, object?>(properties.Length);
        foreach (var property in properties)
            if (property.GetValue(message) is Guid id && id != Guid.Empty)
                ids[property.Name] = id;
        return ids;
    }

    /// <summary>The span tag of an id: <c>aspiretune.experiment_id</c> for <c>ExperimentId</c>.</summary>
    public static string TagName(string name) => "aspiretune." + name[..^2].ToLowerInvariant() + "_id";
}

using AspireTune.ServiceDefaults.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace AspireTune.ServiceDefaults.Work;

public static class WorkQueueExtensions
{
    /// <summary>
    /// Registers <see cref="WorkQueue{TContext, T}"/> for a service's table, its worker identity taken from the data
    /// folder (<see cref="WorkerIdentity"/>). The service adds its own <see cref="WorkQueueWorker{TContext, T}"/>.
    /// </summary>
    public static IServiceCollection AddWorkQueue<TContext, T>(this IServiceCollection services, string service, WorkQueueDefinition<T> definition, Func<IServiceProvider, WorkQueueTiming> timing)
        where TContext : DbContext
        where T : class, ILeasedWork
    {
        services.AddKeyedSingleton(service, (sp, _) => WorkerIdentity.Acquire(sp.GetRequiredService<DataRoot>().Path, service));
        services.AddSingleton(sp => new WorkQueue<TContext, T>(sp.GetRequiredKeyedService<WorkerIdentity>(service), definition, timing(sp)));
        return services;
    }
}

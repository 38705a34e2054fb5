namespace AspireTune.ServiceDefaults.Work;

/// <summary>
/// A worker's name in leases that survives its own restart: <c>host/service/slot</c>, the slot being the first
/// free lock file <c>&lt;data&gt;/work/&lt;service&gt;-&lt;slot&gt;.lock</c>, held open (exclusively) for the process's
/// lifetime. A process killed with SIGKILL loses its lock with its file handles, so the next process on the same
/// data folder gets the same name and takes its predecessor's leases back at once, while two live processes
/// (replicas on one folder) never share a name.
/// </summary>
public sealed class WorkerIdentity : IDisposable
{
    private readonly FileStream _lock;

    private WorkerIdentity(string name, FileStream held)
    {
        Name = name;
        _lock = held;
    }

    public string Name { get; }

    public static WorkerIdentity Acquire(string dataFolder, string service)
    {
        var folder = Directory.CreateDirectory(Path.Combine(dataFolder, "work")).FullName;
        for (var slot = 0; ; slot++)
        {
            var path = Path.Combine(folder, $"{service}-{slot}.lock");
            try
            {
                // FileShare.None takes an exclusive flock on Unix: held by the live process only.
                var held = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                return new WorkerIdentity($"{Environment.MachineName}/{service}/{slot}", held);
            }
            catch (IOException) when (slot < 1024)
            {
                // Held by a live process: try the next slot.
            }
        }
    }

    public void Dispose() => _lock.Dispose();
}

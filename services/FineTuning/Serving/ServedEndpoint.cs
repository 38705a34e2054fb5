using AspireTune.FineTuning.Jobs;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Options;

namespace AspireTune.FineTuning.Serving;

/// <summary>The <c>/v1</c> base URL announced in <c>TrainingCompleted</c>: configured, or the first address this host listens on.</summary>
public sealed class ServedEndpoint(IServer server, IOptions<FineTuningOptions> options)
{
    public string BaseUrl
    {
        get
        {
            var root = options.Value.PublicBaseUrl
                ?? server.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
                ?? "http://localhost:5000";
            return root.TrimEnd('/') + "/v1";
        }
    }
}

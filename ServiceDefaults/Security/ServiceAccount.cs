using System.Net.Http.Headers;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace AspireTune.ServiceDefaults.Security;

/// <summary>
/// How AspireTune's services call each other when authentication is on: each presents the key configured at
/// <see cref="ConfigurationKey"/> (the same service account, with the operator role, in every service's
/// <c>Authentication:ApiKeys</c>). Unset, calls go without credentials, as on an open loopback deployment.
/// </summary>
public sealed class ServiceAccountHandler(IConfiguration configuration) : DelegatingHandler
{
    /// <summary>Configuration key of the service-to-service API key; also named as <c>apiKeySecret</c> for served models.</summary>
    public const string ConfigurationKey = "Authentication:ServiceAccountKey";

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (request.Headers.Authorization is null && configuration[ConfigurationKey] is { Length: > 0 } key)
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return base.SendAsync(request, cancellationToken);
    }
}

public static class ServiceAccountExtensions
{
    /// <summary>Calls made with this client carry the service account key when one is configured.</summary>
    public static IHttpClientBuilder AddServiceAccount(this IHttpClientBuilder client)
    {
        client.Services.AddTransient<ServiceAccountHandler>();
        return client.AddHttpMessageHandler<ServiceAccountHandler>();
    }
}

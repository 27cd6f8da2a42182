using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using RwSplit.Topology;

namespace RwSplit.WebApi;

// TODO(issue 10): a stand-in, to be replaced by AddHealthChecks().AddRwSplit() from RwSplit.HealthChecks when it lands.
// It reads the topology monitor's last snapshot (no query per probe): Unhealthy without an available primary, Degraded
// when a replica is unavailable.
internal sealed class TopologyHealthCheck(RwSplitDataSource dataSource) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var endpoints = dataSource.GetTopology();
        var data = new Dictionary<string, object>();
        for (var i = 0; i < endpoints.Count; i++)
            data[endpoints[i].ConfiguredRole == EndpointRole.Primary ? "primary" : $"replica{i}"] = endpoints[i].IsAvailable ? "available" : "unavailable";
        var primaryUp = endpoints.Any(e => e.ConfiguredRole == EndpointRole.Primary && e.IsAvailable);
        var replicasUp = endpoints.Where(e => e.ConfiguredRole == EndpointRole.Replica).All(e => e.IsAvailable);
        return Task.FromResult(!primaryUp
            ? new HealthCheckResult(context.Registration.FailureStatus, "No available primary.", data: data)
            : replicasUp ? HealthCheckResult.Healthy("Primary and replicas available.", data) : HealthCheckResult.Degraded("A replica is unavailable.", data: data));
    }
}

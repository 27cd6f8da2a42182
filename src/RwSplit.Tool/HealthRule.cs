using System;
using System.Collections.Generic;
using System.Globalization;
using RwSplit.Topology;

namespace RwSplit.Tool;

/// <summary>How healthy a data source is, as <c>rwsplit status</c> reports it (and as its exit code says).</summary>
internal enum HealthLevel
{
    Healthy = ExitCodes.Healthy,
    Degraded = ExitCodes.Degraded,
    Unhealthy = ExitCodes.Unhealthy,
}

/// <summary>
/// The tool's one health rule, over the topology monitor's snapshot. Kept in this one function so that it can be
/// unified with the rule of RwSplit.HealthChecks: Unhealthy when the primary writes go to did not answer or is not
/// writable; Degraded when a replica is ejected (unreachable, lagging past MaxReplicaLag, promoted, re-admitting) or a
/// failover moved writes away from the configured primary; Healthy otherwise.
/// </summary>
internal static class HealthRule
{
    public static (HealthLevel Level, List<string> Reasons) Evaluate(IReadOnlyList<EndpointStatus> endpoints, EndpointAddress currentPrimary, TimeSpan maxReplicaLag)
    {
        var reasons = new List<string>();
        var level = HealthLevel.Healthy;
        foreach (var endpoint in endpoints)
        {
            if (endpoint.Address.Equals(currentPrimary))
            {
                if (!endpoint.IsAvailable)
                {
                    reasons.Add($"primary {endpoint.Address} did not answer{(endpoint.LastError is null ? "" : ": " + endpoint.LastError)}");
                    level = HealthLevel.Unhealthy;
                }
                else if (endpoint.ObservedRole is { } role && role != EndpointRole.Primary)
                {
                    reasons.Add($"primary {endpoint.Address} is not writable (it reports itself a {role.ToString().ToLowerInvariant()})");
                    level = HealthLevel.Unhealthy;
                }

                if (endpoint.ConfiguredRole != EndpointRole.Primary)
                {
                    reasons.Add($"failover: writes go to {endpoint.Address}, not to the configured primary");
                    level = Worse(level, HealthLevel.Degraded);
                }

                continue;
            }

            if (endpoint.ConfiguredRole == EndpointRole.Primary)
                continue; // the configured primary after a failover: reported by the failover reason above
            if (!endpoint.IsAvailable)
            {
                reasons.Add($"replica {endpoint.Address} is ejected: {EjectionReason(endpoint, maxReplicaLag)}");
                level = Worse(level, HealthLevel.Degraded);
            }
            else if (endpoint.ReplicationLag is { } lag && lag > maxReplicaLag)
            {
                reasons.Add($"replica {endpoint.Address} lags {lag.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture)} s, past MaxReplicaLag");
                level = Worse(level, HealthLevel.Degraded);
            }
        }

        return (level, reasons);
    }

    /// <summary>Why an endpoint takes no reads now, or null when it does (its last error carries no secret).</summary>
    public static string? EjectionReason(EndpointStatus endpoint, TimeSpan maxReplicaLag)
    {
        if (endpoint.IsAvailable)
            return null;
        if (endpoint.LastError is { } error)
            return error;
        if (!endpoint.IsReachable)
            return "unreachable";
        if (endpoint.ConfiguredRole == EndpointRole.Replica && endpoint.ObservedRole == EndpointRole.Primary)
            return "it reports itself primary (promoted)";
        if (endpoint.ReplicationLag is { } lag && lag > maxReplicaLag)
            return $"lagging {lag.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture)} s, past MaxReplicaLag ({maxReplicaLag.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture)} s)";
        return $"re-admitting ({endpoint.ConsecutiveHealthyProbes} healthy probes so far)";
    }

    private static HealthLevel Worse(HealthLevel a, HealthLevel b) => (HealthLevel)Math.Max((int)a, (int)b);
}

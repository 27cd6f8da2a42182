using System;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace RwSplit.HealthChecks;

/// <summary>
/// The thresholds of an <see cref="RwSplitHealthCheck"/>. Each left <see langword="null"/> is derived from the data
/// source's own <see cref="RwSplitOptions"/>, so that the defaults follow its monitor interval and lag limit.
/// </summary>
public sealed class RwSplitHealthCheckOptions
{
    /// <summary>
    /// How long without a completed probe round before the monitor counts as stale (Unhealthy: what it last saw can no
    /// longer be trusted). Default: three rounds at their slowest, 3 × (<see cref="RwSplitOptions.HealthCheckInterval"/> +
    /// the probe timeout, which is twice the interval and at least 2 s): 9 s at the default interval of 1 s.
    /// </summary>
    public TimeSpan? StaleAfter { get; set; }

    /// <summary>
    /// The lag past which a replica makes the check Degraded even while it still serves reads. Default:
    /// <see cref="RwSplitOptions.MaxReplicaLag"/> (past which the monitor ejects it anyway).
    /// </summary>
    public TimeSpan? MaxReplicaLag { get; set; }

    /// <summary>
    /// How long after a failover the check stays Degraded (writes moved to a promoted replica, which also left the read
    /// rotation). Default: 60 × <see cref="RwSplitOptions.HealthCheckInterval"/>, at least 1 minute.
    /// </summary>
    public TimeSpan? RecentFailover { get; set; }

    /// <summary>
    /// How long after a read last fell back to the primary (no replica could serve it) the check stays Degraded. Default:
    /// 10 × <see cref="RwSplitOptions.HealthCheckInterval"/>, at least 10 seconds.
    /// </summary>
    public TimeSpan? RecentFallbackRead { get; set; }

    /// <summary>
    /// The status when <see cref="RwSplitOptions.HealthMonitoring"/> is off: nothing measures the servers then, so the
    /// check cannot say they are well. Default: <see cref="HealthStatus.Degraded"/> (<see cref="HealthStatus.Unhealthy"/>
    /// reports the registration's failure status instead).
    /// </summary>
    public HealthStatus MonitoringDisabledStatus { get; set; } = HealthStatus.Degraded;
}

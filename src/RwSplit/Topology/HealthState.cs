namespace RwSplit.Topology;

/// <summary>What one probe of a replica found.</summary>
internal enum ProbeOutcome
{
    /// <summary>Reachable, a replica, within <see cref="RwSplitOptions.MaxReplicaLag"/>.</summary>
    Healthy = 0,

    /// <summary>Reachable but further behind than <see cref="RwSplitOptions.MaxReplicaLag"/>.</summary>
    Lagging = 1,

    /// <summary>Unreachable, or the probe failed.</summary>
    Failed = 2,

    /// <summary>Reachable, but no longer a replica (promoted): it cannot serve as a read replica.</summary>
    NotAReplica = 3,
}

/// <summary>
/// The ejection/re-admission state machine of one replica: ejected at once on any bad probe or failed connection,
/// re-admitted only after <c>readmitAfter</c> consecutive healthy probes (hysteresis). A pure value.
/// </summary>
internal readonly record struct HealthState(bool Admitted, int ConsecutiveHealthy, int ConsecutiveUnhealthy)
{
    /// <summary>A replica starts admitted: the first bad probe or failed connection ejects it.</summary>
    public static HealthState Initial => new(true, 0, 0);

    public HealthState Next(ProbeOutcome outcome, int readmitAfter)
    {
        if (outcome != ProbeOutcome.Healthy)
            return new HealthState(false, 0, ConsecutiveUnhealthy + 1);
        var healthy = ConsecutiveHealthy + 1;
        return new HealthState(Admitted || healthy >= readmitAfter, healthy, 0);
    }
}

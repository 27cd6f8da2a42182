using System;
using System.Collections.Generic;
using RwSplit.Transactions;

namespace RwSplit.Topology;

/// <summary>
/// What a data source knows of its own health at one instant (<see cref="RwSplitDataSource.GetHealth"/>): the topology
/// monitor's last observations, when it last completed a round, failovers, reads that fell back to the primary, and what
/// crash recovery left unresolved. Taken from state the data source keeps anyway, without a query. A snapshot: it does not
/// change after it is returned. Durations are measured on a monotonic clock at the moment it was taken.
/// </summary>
public sealed class DataSourceHealth
{
    internal DataSourceHealth(
        string dataSourceName,
        bool monitoringEnabled,
        TimeSpan monitorInterval,
        TimeSpan probeTimeout,
        TimeSpan maxReplicaLag,
        TimeSpan age,
        long completedRounds,
        TimeSpan? sinceLastRound,
        EndpointAddress configuredPrimary,
        EndpointAddress currentPrimary,
        long failovers,
        TimeSpan? sinceLastFailover,
        long fallbackReads,
        TimeSpan? sinceLastFallbackRead,
        int fallbackReadsInFlight,
        IReadOnlyList<EndpointStatus> endpoints,
        bool distributedTransactions,
        IReadOnlyList<UnresolvedTransaction> unresolvedTransactions,
        IReadOnlyList<HeuristicOutcome> heuristicOutcomes)
    {
        DataSourceName = dataSourceName;
        MonitoringEnabled = monitoringEnabled;
        MonitorInterval = monitorInterval;
        ProbeTimeout = probeTimeout;
        MaxReplicaLag = maxReplicaLag;
        Age = age;
        CompletedRounds = completedRounds;
        SinceLastRound = sinceLastRound;
        ConfiguredPrimary = configuredPrimary;
        CurrentPrimary = currentPrimary;
        Failovers = failovers;
        SinceLastFailover = sinceLastFailover;
        FallbackReads = fallbackReads;
        SinceLastFallbackRead = sinceLastFallbackRead;
        FallbackReadsInFlight = fallbackReadsInFlight;
        Endpoints = endpoints;
        DistributedTransactions = distributedTransactions;
        UnresolvedTransactions = unresolvedTransactions;
        HeuristicOutcomes = heuristicOutcomes;
    }

    /// <summary>The data source's <see cref="RwSplitDataSource.Name"/>.</summary>
    public string DataSourceName { get; }

    /// <summary>Whether the topology monitor runs (<see cref="RwSplitOptions.HealthMonitoring"/>); without it, nothing below about the servers is measured.</summary>
    public bool MonitoringEnabled { get; }

    /// <summary>How often the monitor probes (<see cref="RwSplitOptions.HealthCheckInterval"/>).</summary>
    public TimeSpan MonitorInterval { get; }

    /// <summary>How long one probe may take before it counts as failed (twice the interval, at least 2 seconds); zero without monitoring.</summary>
    public TimeSpan ProbeTimeout { get; }

    /// <summary>The lag past which a replica is ejected (<see cref="RwSplitOptions.MaxReplicaLag"/>).</summary>
    public TimeSpan MaxReplicaLag { get; }

    /// <summary>How long ago the data source was built.</summary>
    public TimeSpan Age { get; }

    /// <summary>Probe rounds the monitor completed (every endpoint probed and the results applied).</summary>
    public long CompletedRounds { get; }

    /// <summary>How long ago the monitor completed its last round; <see langword="null"/> before the first (or without monitoring).</summary>
    public TimeSpan? SinceLastRound { get; }

    /// <summary>The primary as configured.</summary>
    public EndpointAddress ConfiguredPrimary { get; }

    /// <summary>The primary writes go to now (a promoted replica after a failover).</summary>
    public EndpointAddress CurrentPrimary { get; }

    /// <summary>Whether writes go to another server than the configured primary.</summary>
    public bool FailedOver => !ConfiguredPrimary.Equals(CurrentPrimary);

    /// <summary>Failovers the monitor carried out since the data source was built.</summary>
    public long Failovers { get; }

    /// <summary>How long ago the last failover happened; <see langword="null"/> when none did.</summary>
    public TimeSpan? SinceLastFailover { get; }

    /// <summary>Reads that ran on the primary for want of a replica (each took a <see cref="RwSplitOptions.FallbackReadLimit"/> slot).</summary>
    public long FallbackReads { get; }

    /// <summary>How long ago the last read fell back to the primary; <see langword="null"/> when none did.</summary>
    public TimeSpan? SinceLastFallbackRead { get; }

    /// <summary>Fallback reads running on the primary now.</summary>
    public int FallbackReadsInFlight { get; }

    /// <summary>What the monitor last observed of every endpoint, the configured primary first, then the replicas in configuration order.</summary>
    public IReadOnlyList<EndpointStatus> Endpoints { get; }

    /// <summary>Whether the data source takes part in distributed transactions (it then has a <see cref="RwSplitDataSource.Recovery"/>).</summary>
    public bool DistributedTransactions { get; }

    /// <summary>
    /// Prepared branches the last recovery pass could not resolve (<see cref="RwSplitRecovery.Unresolved"/>). The recovery
    /// may be shared with other data sources (dependency injection shares one): the list covers all of them.
    /// </summary>
    public IReadOnlyList<UnresolvedTransaction> UnresolvedTransactions { get; }

    /// <summary>Heuristic outcomes not yet acknowledged (<see cref="RwSplitRecovery.HeuristicOutcomes"/>), of the same recovery.</summary>
    public IReadOnlyList<HeuristicOutcome> HeuristicOutcomes { get; }
}

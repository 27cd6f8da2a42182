using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using RwSplit.Topology;

namespace RwSplit.HealthChecks;

/// <summary>What the health rules read of a replica.</summary>
/// <param name="Address">Its address (free of secrets).</param>
/// <param name="Available">Whether reads may go to it now.</param>
/// <param name="Reachable">Whether its last probe reached it.</param>
/// <param name="IsCurrentPrimary">Whether it was promoted and takes the writes now (then it is no read replica).</param>
/// <param name="LagSeconds">Its last measured lag, when known.</param>
/// <param name="ErrorKind">The kind of its last failure, when it failed.</param>
internal readonly record struct ReplicaFacts(string Address, bool Available, bool Reachable, bool IsCurrentPrimary, double? LagSeconds, string? ErrorKind);

/// <summary>What the health rules read of a data source: a plain value, so that the rules are a pure function of it.</summary>
internal sealed record HealthFacts(
    bool Monitoring,
    TimeSpan Age,
    TimeSpan? SinceLastRound,
    string CurrentPrimary,
    bool PrimaryReachable,
    bool PrimaryWritable,
    string? PrimaryErrorKind,
    TimeSpan? SinceLastFailover,
    TimeSpan? SinceLastFallbackRead,
    int FallbackReadsInFlight,
    int Unresolved,
    int Heuristic,
    IReadOnlyList<ReplicaFacts> Replicas)
{
    /// <summary>The facts of a data source's health snapshot.</summary>
    public static HealthFacts From(DataSourceHealth health)
    {
        var primary = health.Endpoints.FirstOrDefault(e => e.Address.Equals(health.CurrentPrimary)) ?? health.Endpoints[0];
        var replicas = health.Endpoints
            .Where(e => e.ConfiguredRole == EndpointRole.Replica)
            .Select(e => new ReplicaFacts(
                e.Address.ToString(),
                e.IsAvailable,
                e.IsReachable,
                ReferenceEquals(e, primary),
                e.ReplicationLag?.TotalSeconds,
                e.LastErrorKind))
            .ToArray();
        return new HealthFacts(
            health.MonitoringEnabled,
            health.Age,
            health.SinceLastRound,
            health.CurrentPrimary.ToString(),
            primary.IsReachable,
            primary.IsReachable && primary.ObservedRole == EndpointRole.Primary,
            primary.LastErrorKind,
            health.SinceLastFailover,
            health.SinceLastFallbackRead,
            health.FallbackReadsInFlight,
            health.UnresolvedTransactions.Count,
            health.HeuristicOutcomes.Count,
            replicas);
    }
}

/// <summary>The thresholds the rules apply, every one resolved.</summary>
internal sealed record HealthThresholds(TimeSpan StaleAfter, TimeSpan MaxReplicaLag, TimeSpan RecentFailover, TimeSpan RecentFallbackRead, HealthStatus MonitoringDisabledStatus)
{
    /// <summary>The options' thresholds, each one left unset derived from the data source's own options.</summary>
    public static HealthThresholds Resolve(RwSplitHealthCheckOptions options, DataSourceHealth health)
    {
        var interval = health.MonitorInterval;
        var probeTimeout = health.ProbeTimeout > TimeSpan.Zero ? health.ProbeTimeout : Max(TimeSpan.FromSeconds(2), interval * 2);
        return new HealthThresholds(
            options.StaleAfter ?? (interval + probeTimeout) * 3,
            options.MaxReplicaLag ?? health.MaxReplicaLag,
            options.RecentFailover ?? Max(TimeSpan.FromMinutes(1), interval * 60),
            options.RecentFallbackRead ?? Max(TimeSpan.FromSeconds(10), interval * 10),
            options.MonitoringDisabledStatus);
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;
}

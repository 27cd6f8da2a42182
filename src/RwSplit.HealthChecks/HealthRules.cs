using System;
using System.Collections.Generic;
using System.Globalization;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace RwSplit.HealthChecks;

/// <summary>A status and every reason for it, the worst first.</summary>
internal sealed record HealthVerdict(HealthStatus Status, IReadOnlyList<string> Reasons);

/// <summary>
/// The decision of the health check: a pure function from a data source's health facts and the thresholds to a status
/// and its reasons. Unhealthy: no writable primary, or the monitor is stale. Degraded: a replica ejected or lagging past
/// the limit, reads falling back to the primary, a recent failover, unresolved prepared branches, unacknowledged
/// heuristic outcomes, no first round yet, or monitoring off. Healthy otherwise.
/// </summary>
internal static class HealthRules
{
    public static HealthVerdict Evaluate(HealthFacts facts, HealthThresholds thresholds)
    {
        var unhealthy = new List<string>();
        var degraded = new List<string>();
        if (facts.Monitoring)
        {
            Monitor(facts, thresholds, unhealthy, degraded);
            if (facts.SinceLastRound is not null)
                Replicas(facts, thresholds, degraded); // before the first round nothing is known of them yet
            if (facts.SinceLastFailover is { } failover && failover <= thresholds.RecentFailover)
                degraded.Add($"a failover happened {Seconds(failover)} s ago: writes go to {facts.CurrentPrimary}");
        }

        if (facts.FallbackReadsInFlight > 0)
            degraded.Add($"{facts.FallbackReadsInFlight} read(s) run on the primary now for want of a replica");
        else if (facts.SinceLastFallbackRead is { } fallback && fallback <= thresholds.RecentFallbackRead)
            degraded.Add($"a read fell back to the primary {Seconds(fallback)} s ago for want of a replica");
        if (facts.Unresolved > 0)
            degraded.Add($"{facts.Unresolved} prepared branch(es) left unresolved by recovery");
        if (facts.Heuristic > 0)
            degraded.Add($"{facts.Heuristic} heuristic outcome(s) not acknowledged");

        var status = unhealthy.Count > 0 ? HealthStatus.Unhealthy : degraded.Count > 0 ? HealthStatus.Degraded : HealthStatus.Healthy;
        var reasons = new List<string>(unhealthy.Count + degraded.Count + 1);
        if (!facts.Monitoring)
        {
            // Nothing measures the servers: the configured status is the best the check can report (HealthStatus: lower is worse).
            status = (HealthStatus)Math.Min((int)status, (int)thresholds.MonitoringDisabledStatus);
            reasons.Add("health monitoring is off (RwSplitOptions.HealthMonitoring): nothing measures the primary and the replicas");
        }

        reasons.AddRange(unhealthy);
        reasons.AddRange(degraded);
        return new HealthVerdict(status, reasons);
    }

    private static void Monitor(HealthFacts facts, HealthThresholds thresholds, List<string> unhealthy, List<string> degraded)
    {
        if (facts.SinceLastRound is not { } sinceRound)
        {
            if (facts.Age > thresholds.StaleAfter)
                unhealthy.Add($"the topology monitor is stale: no probe round completed in {Seconds(facts.Age)} s (limit {Seconds(thresholds.StaleAfter)} s)");
            else
                degraded.Add("the topology monitor has not completed its first probe round yet");
            return;
        }

        if (sinceRound > thresholds.StaleAfter)
            unhealthy.Add($"the topology monitor is stale: its last probe round completed {Seconds(sinceRound)} s ago (limit {Seconds(thresholds.StaleAfter)} s)");
        if (!facts.PrimaryReachable)
            unhealthy.Add($"no writable primary: {facts.CurrentPrimary} is unreachable ({facts.PrimaryErrorKind ?? "unknown"})");
        else if (!facts.PrimaryWritable)
            unhealthy.Add($"no writable primary: {facts.CurrentPrimary} reports itself a replica");
    }

    private static void Replicas(HealthFacts facts, HealthThresholds thresholds, List<string> degraded)
    {
        var limit = thresholds.MaxReplicaLag.TotalSeconds;
        foreach (var replica in facts.Replicas)
        {
            if (replica.IsCurrentPrimary)
                continue; // promoted: it takes the writes, the failover rule covers it
            var lagging = replica.LagSeconds is { } lag && lag > limit;
            if (!replica.Reachable)
                degraded.Add($"replica {replica.Address} is ejected: unreachable ({replica.ErrorKind ?? "unknown"})");
            else if (lagging)
                degraded.Add($"replica {replica.Address} {(replica.Available ? "lags" : "is ejected: it lags")} {Seconds(replica.LagSeconds!.Value)} s (limit {Seconds(limit)} s)");
            else if (!replica.Available)
                degraded.Add($"replica {replica.Address} is ejected{(replica.ErrorKind is { } kind ? $" ({kind})" : ": waiting for enough healthy probes to be re-admitted")}");
        }
    }

    private static string Seconds(TimeSpan value) => Seconds(value.TotalSeconds);

    private static string Seconds(double seconds) => seconds.ToString("0.###", CultureInfo.InvariantCulture);
}

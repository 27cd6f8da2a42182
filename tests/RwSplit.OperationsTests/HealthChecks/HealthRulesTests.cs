using System;
using System.Collections.Generic;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using NUnit.Framework;
using RwSplit.HealthChecks;

namespace RwSplit.OperationsTests.HealthChecks;

/// <summary>The truth table of the health decision: each row changes one fact (or two) of a healthy data source.</summary>
public sealed class HealthRulesTests
{
    private static readonly HealthThresholds Thresholds = new(
        StaleAfter: TimeSpan.FromSeconds(9),
        MaxReplicaLag: TimeSpan.FromSeconds(10),
        RecentFailover: TimeSpan.FromSeconds(60),
        RecentFallbackRead: TimeSpan.FromSeconds(10),
        MonitoringDisabledStatus: HealthStatus.Degraded);

    private static readonly ReplicaFacts Replica0 = new("r0:5432/app", Available: true, Reachable: true, IsCurrentPrimary: false, LagSeconds: 0, ErrorKind: null);

    private static readonly ReplicaFacts Replica1 = Replica0 with { Address = "r1:5432/app" };

    private static readonly HealthFacts Healthy = new(
        Monitoring: true,
        Age: TimeSpan.FromMinutes(5),
        SinceLastRound: TimeSpan.FromSeconds(0.5),
        CurrentPrimary: "p:5432/app",
        PrimaryReachable: true,
        PrimaryWritable: true,
        PrimaryErrorKind: null,
        SinceLastFailover: null,
        SinceLastFallbackRead: null,
        FallbackReadsInFlight: 0,
        Unresolved: 0,
        Heuristic: 0,
        Replicas: [Replica0, Replica1]);

    private static HealthFacts WithReplica0(ReplicaFacts replica) => Healthy with { Replicas = [replica, Replica1] };

    private static IEnumerable<TestCaseData> Rows()
    {
        static TestCaseData Row(string name, HealthFacts facts, HealthStatus status, params string[] reasons)
            => new TestCaseData(facts, Thresholds, status, reasons).SetName(name);

        yield return Row("Healthy_when_nothing_is_wrong", Healthy, HealthStatus.Healthy);

        // The monitor.
        yield return Row("Unhealthy_when_the_last_round_is_older_than_StaleAfter", Healthy with { SinceLastRound = TimeSpan.FromSeconds(9.5) }, HealthStatus.Unhealthy, "monitor is stale: its last probe round completed 9.5 s ago (limit 9 s)");
        yield return Row("Healthy_when_the_last_round_is_exactly_StaleAfter_old", Healthy with { SinceLastRound = TimeSpan.FromSeconds(9) }, HealthStatus.Healthy);
        yield return Row("Degraded_before_the_first_round_of_a_young_data_source", Healthy with { SinceLastRound = null, Age = TimeSpan.FromSeconds(2) }, HealthStatus.Degraded, "has not completed its first probe round");
        yield return Row("Before_the_first_round_unprobed_endpoints_are_not_called_unreachable", Healthy with { SinceLastRound = null, Age = TimeSpan.FromSeconds(1), PrimaryReachable = false, PrimaryWritable = false, Replicas = [Replica0 with { Available = false, Reachable = false }] }, HealthStatus.Degraded, "has not completed its first probe round");
        yield return Row("Unhealthy_when_no_round_completed_within_StaleAfter", Healthy with { SinceLastRound = null, Age = TimeSpan.FromSeconds(20) }, HealthStatus.Unhealthy, "no probe round completed in 20 s");

        // The primary.
        yield return Row("Unhealthy_when_the_primary_is_unreachable", Healthy with { PrimaryReachable = false, PrimaryWritable = false, PrimaryErrorKind = "socket:ConnectionRefused" }, HealthStatus.Unhealthy, "no writable primary: p:5432/app is unreachable (socket:ConnectionRefused)");
        yield return Row("Unhealthy_when_the_primary_reports_itself_a_replica", Healthy with { PrimaryWritable = false }, HealthStatus.Unhealthy, "p:5432/app reports itself a replica");
        yield return Row("Unhealthy_reasons_come_before_Degraded_ones", WithReplica0(Replica0 with { Available = false, Reachable = false, ErrorKind = "timeout" }) with { PrimaryReachable = false, PrimaryWritable = false, PrimaryErrorKind = "timeout" }, HealthStatus.Unhealthy, "no writable primary", "replica r0:5432/app is ejected: unreachable (timeout)");

        // The replicas.
        yield return Row("Degraded_when_a_replica_is_unreachable", WithReplica0(Replica0 with { Available = false, Reachable = false, ErrorKind = "socket:ConnectionRefused" }), HealthStatus.Degraded, "replica r0:5432/app is ejected: unreachable (socket:ConnectionRefused)");
        yield return Row("Degraded_when_a_replica_is_ejected_for_lag", WithReplica0(Replica0 with { Available = false, LagSeconds = 12 }), HealthStatus.Degraded, "replica r0:5432/app is ejected: it lags 12 s (limit 10 s)");
        yield return Row("Degraded_when_a_serving_replica_lags_past_the_limit", WithReplica0(Replica0 with { LagSeconds = 12.25 }), HealthStatus.Degraded, "replica r0:5432/app lags 12.25 s (limit 10 s)");
        yield return Row("Healthy_when_a_replica_lags_exactly_the_limit", WithReplica0(Replica0 with { LagSeconds = 10 }), HealthStatus.Healthy);
        yield return Row("Degraded_while_a_recovered_replica_waits_to_be_readmitted", WithReplica0(Replica0 with { Available = false }), HealthStatus.Degraded, "replica r0:5432/app is ejected: waiting for enough healthy probes");
        yield return Row("Degraded_with_the_kind_when_a_reachable_replica_was_ejected_by_a_failed_read", WithReplica0(Replica0 with { Available = false, ErrorKind = "sqlstate:57P01" }), HealthStatus.Degraded, "replica r0:5432/app is ejected (sqlstate:57P01)");
        yield return Row("Every_ejected_replica_is_named", Healthy with { Replicas = [Replica0 with { Available = false, Reachable = false }, Replica1 with { Available = false, Reachable = false }] }, HealthStatus.Degraded, "replica r0:5432/app is ejected: unreachable (unknown)", "replica r1:5432/app is ejected: unreachable (unknown)");
        yield return Row("A_promoted_replica_is_not_an_ejected_one", WithReplica0(Replica0 with { Available = false, IsCurrentPrimary = true }) with { SinceLastFailover = TimeSpan.FromMinutes(10) }, HealthStatus.Healthy);

        // Failover, fallback reads.
        yield return Row("Degraded_after_a_recent_failover", Healthy with { SinceLastFailover = TimeSpan.FromSeconds(30) }, HealthStatus.Degraded, "a failover happened 30 s ago: writes go to p:5432/app");
        yield return Row("Healthy_once_the_failover_is_older_than_RecentFailover", Healthy with { SinceLastFailover = TimeSpan.FromSeconds(61) }, HealthStatus.Healthy);
        yield return Row("Degraded_after_a_recent_fallback_read", Healthy with { SinceLastFallbackRead = TimeSpan.FromSeconds(5) }, HealthStatus.Degraded, "a read fell back to the primary 5 s ago");
        yield return Row("Healthy_once_the_fallback_read_is_older_than_RecentFallbackRead", Healthy with { SinceLastFallbackRead = TimeSpan.FromSeconds(11) }, HealthStatus.Healthy);
        yield return Row("Degraded_while_fallback_reads_run", Healthy with { FallbackReadsInFlight = 3, SinceLastFallbackRead = TimeSpan.FromMinutes(1) }, HealthStatus.Degraded, "3 read(s) run on the primary now");

        // Recovery.
        yield return Row("Degraded_when_prepared_branches_are_unresolved", Healthy with { Unresolved = 2 }, HealthStatus.Degraded, "2 prepared branch(es) left unresolved by recovery");
        yield return Row("Degraded_when_heuristic_outcomes_are_unacknowledged", Healthy with { Heuristic = 1 }, HealthStatus.Degraded, "1 heuristic outcome(s) not acknowledged");

        // Monitoring off: the servers' facts mean nothing, the configured status applies, recovery still counts.
        var off = Healthy with { Monitoring = false, SinceLastRound = null, PrimaryReachable = false, PrimaryWritable = false, Replicas = [Replica0 with { Available = false, Reachable = false }] };
        yield return Row("Monitoring_off_is_Degraded_by_default_and_says_so", off, HealthStatus.Degraded, "health monitoring is off");
        yield return new TestCaseData(off, Thresholds with { MonitoringDisabledStatus = HealthStatus.Healthy }, HealthStatus.Healthy, new[] { "health monitoring is off" }).SetName("Monitoring_off_reports_the_configured_Healthy");
        yield return new TestCaseData(off, Thresholds with { MonitoringDisabledStatus = HealthStatus.Unhealthy }, HealthStatus.Unhealthy, new[] { "health monitoring is off" }).SetName("Monitoring_off_reports_the_configured_Unhealthy");
        yield return new TestCaseData(off with { Unresolved = 1 }, Thresholds with { MonitoringDisabledStatus = HealthStatus.Healthy }, HealthStatus.Degraded, new[] { "health monitoring is off", "1 prepared branch(es)" }).SetName("Monitoring_off_still_reports_unresolved_branches");
    }

    [TestCaseSource(nameof(Rows))]
    public void Decides(object facts, object thresholds, HealthStatus status, string[] reasons)
    {
        // object: the rules and their inputs are internal to the package.
        var verdict = HealthRules.Evaluate((HealthFacts)facts, (HealthThresholds)thresholds);

        Assert.That(verdict.Status, Is.EqualTo(status), string.Join("; ", verdict.Reasons));
        Assert.That(verdict.Reasons, Has.Count.EqualTo(reasons.Length), string.Join("; ", verdict.Reasons));
        for (var i = 0; i < reasons.Length; i++)
            Assert.That(verdict.Reasons[i], Does.Contain(reasons[i]));
    }
}

using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Linq;
using System.Reflection;

namespace RwSplit.Diagnostics;

/// <summary>
/// The library's one <see cref="ActivitySource"/> and one <see cref="Meter"/>, both named <c>RwSplit</c>. Listen to them
/// with OpenTelemetry (<c>AddRwSplitInstrumentation()</c> from the <c>RwSplit.OpenTelemetry</c> package, or
/// <c>AddSource("RwSplit")</c> and <c>AddMeter("RwSplit")</c>) or any listener.
/// </summary>
public static class RwSplitTelemetry
{
    /// <summary>The name of the activity source and of the meter: <c>RwSplit</c>.</summary>
    public const string Name = "RwSplit";

    private static readonly string? Version = typeof(RwSplitTelemetry).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;

    internal static readonly ActivitySource Source = new(Name, Version);

    internal static readonly Meter Meter = new(Name, Version);

    /// <summary>Every routing decision, tagged with target, reason and data source.</summary>
    internal static readonly Counter<long> Decisions = Meter.CreateCounter<long>(
        "rwsplit.routing.decisions", unit: "{decision}", description: "Commands routed, by target role and reason.");

    /// <summary>Statements a replica rejected as writes and that were retried on the primary.</summary>
    internal static readonly Counter<long> Misroutes = Meter.CreateCounter<long>(
        "rwsplit.routing.misroutes", unit: "{statement}", description: "Statements a replica rejected as writes; retried once on the primary and remembered as writes.");

    /// <summary>Replicas skipped because a connection to them could not be opened.</summary>
    internal static readonly Counter<long> ReplicaFailures = Meter.CreateCounter<long>(
        "rwsplit.replica.connection_failures", unit: "{failure}", description: "Failed attempts to open a connection to a replica; the read moved elsewhere.");

    /// <summary>Physical connections opened through the provider, by role.</summary>
    internal static readonly Counter<long> PhysicalOpens = Meter.CreateCounter<long>(
        "rwsplit.connection.physical_opens", unit: "{connection}", description: "Provider connections opened (taken from the provider's pool) by logical connections, by role.");

    /// <summary>Replicas ejected by the topology monitor.</summary>
    internal static readonly Counter<long> Ejections = Meter.CreateCounter<long>(
        "rwsplit.replica.ejections", unit: "{ejection}", description: "Replicas taken out of read rotation (unreachable, failing or lagging past MaxReplicaLag).");

    /// <summary>Reads retried elsewhere after their replica failed before returning rows.</summary>
    internal static readonly Counter<long> ReadRetries = Meter.CreateCounter<long>(
        "rwsplit.routing.read_retries", unit: "{read}", description: "Reads whose replica failed before any row reached the caller, retried on another server.");

    /// <summary>Reads refused because the fallback budget was exhausted.</summary>
    internal static readonly Counter<long> FallbackRejections = Meter.CreateCounter<long>(
        "rwsplit.routing.fallback_rejections", unit: "{read}", description: "Reads refused because FallbackReadLimit reads already ran on the primary for want of a replica.");

    /// <summary>Distributed transactions by kind (read_only, one_phase, two_phase, rollback) and outcome (committed, aborted, in_doubt).</summary>
    internal static readonly Counter<long> Transactions = Meter.CreateCounter<long>(
        "rwsplit.transactions", unit: "{transaction}", description: "Distributed transactions by kind and outcome.");

#if NET9_0_OR_GREATER
    /// <summary>The buckets the database semantic conventions advise for durations in seconds (the SDK's default ones are for milliseconds).</summary>
    private static readonly InstrumentAdvice<double> DurationAdvice = new() { HistogramBucketBoundaries = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10] };

    /// <summary>Commit duration of distributed transactions, in seconds (as the semantic conventions measure durations).</summary>
    internal static readonly Histogram<double> TransactionDuration = Meter.CreateHistogram<double>(
        "rwsplit.transaction.commit.duration", unit: "s", description: "Time to run the commit protocol of a distributed transaction.", tags: null, advice: DurationAdvice);
#else
    /// <summary>Commit duration of distributed transactions, in seconds (as the semantic conventions measure durations).</summary>
    internal static readonly Histogram<double> TransactionDuration = Meter.CreateHistogram<double>(
        "rwsplit.transaction.commit.duration", unit: "s", description: "Time to run the commit protocol of a distributed transaction.");
#endif

    /// <summary>What recovery did to prepared branches (commit, rollback, fence, forced_commit, forced_rollback).</summary>
    internal static readonly Counter<long> RecoveryActions = Meter.CreateCounter<long>(
        "rwsplit.recovery.actions", unit: "{branch}", description: "Prepared branches resolved by recovery, by action.");

    /// <summary>Writes refused by a prevent-writes scope.</summary>
    internal static readonly Counter<long> WritesBlocked = Meter.CreateCounter<long>(
        "rwsplit.routing.writes_blocked", unit: "{statement}", description: "Statements refused by a PreventWrites scope before they left the process.");

    /// <summary>Live data sources, for the observable gauges.</summary>
    private static readonly ConcurrentDictionary<RwSplitDataSource, byte> DataSources = new();

    /// <summary>Replication lag per replica, as last measured by the topology monitor.</summary>
    internal static readonly ObservableGauge<double> ReplicaLag = Meter.CreateObservableGauge(
        "rwsplit.replica.lag", ObserveLag, unit: "s", description: "Replication lag of each replica behind the primary, as measured by the topology monitor.");

    /// <summary>1 when a replica takes reads, 0 when ejected.</summary>
    internal static readonly ObservableGauge<int> ReplicaAvailable = Meter.CreateObservableGauge(
        "rwsplit.replica.available", ObserveAvailable, unit: "{replica}", description: "1 when the replica is in read rotation, 0 when ejected.");

    /// <summary>Prepared branches the last recovery pass could not resolve (stuck or in doubt).</summary>
    internal static readonly ObservableGauge<int> Unresolved = Meter.CreateObservableGauge(
        "rwsplit.recovery.unresolved", () => Recoveries().Sum(r => r.Unresolved.Count), unit: "{branch}", description: "Prepared branches the last recovery pass could not resolve.");

    /// <summary>Heuristic outcomes (decision committed, a heuristic participant's work missing) not acknowledged yet.</summary>
    internal static readonly ObservableGauge<int> HeuristicOutcomes = Meter.CreateObservableGauge(
        "rwsplit.recovery.heuristic", () => Recoveries().Sum(r => r.HeuristicOutcomes.Count), unit: "{transaction}", description: "Heuristic outcomes the last recovery pass found that are not acknowledged yet (AllowHeuristicCommit).");

    internal static void Register(RwSplitDataSource dataSource) => DataSources.TryAdd(dataSource, 0);

    internal static void Unregister(RwSplitDataSource dataSource) => DataSources.TryRemove(dataSource, out _);

    /// <summary>The recoveries of the live data sources, each once.</summary>
    private static IEnumerable<RwSplit.Transactions.RwSplitRecovery> Recoveries()
        => DataSources.Keys.Select(d => d.Recovery).OfType<RwSplit.Transactions.RwSplitRecovery>().Distinct();

    private static IEnumerable<Measurement<double>> ObserveLag()
    {
        foreach (var (dataSource, status) in ConfiguredReplicas())
        {
            if (status.ReplicationLag is { } lag)
                yield return new Measurement<double>(lag.TotalSeconds, Tags(dataSource, status));
        }
    }

    private static IEnumerable<Measurement<int>> ObserveAvailable()
    {
        foreach (var (dataSource, status) in ConfiguredReplicas())
            yield return new Measurement<int>(status.IsAvailable ? 1 : 0, Tags(dataSource, status));
    }

    /// <summary>Every replica of every live data source, as its topology reports it now.</summary>
    private static IEnumerable<(RwSplitDataSource DataSource, Topology.EndpointStatus Status)> ConfiguredReplicas()
    {
        foreach (var dataSource in DataSources.Keys)
        {
            foreach (var status in dataSource.GetTopology())
            {
                if (status.ConfiguredRole == Topology.EndpointRole.Replica)
                    yield return (dataSource, status);
            }
        }
    }

    /// <summary>The replica's identity as the semantic conventions spell it: host and port apart, and the database.</summary>
    private static TagList Tags(RwSplitDataSource dataSource, Topology.EndpointStatus status)
    {
        var tags = new TagList { { TagNames.DataSource, dataSource.Name }, { TagNames.ServerAddress, status.Address.Host } };
        if (status.Address.Port is { } port)
            tags.Add(TagNames.ServerPort, port);
        if (status.Address.Database is { } database)
            tags.Add(TagNames.DbNamespace, database);
        return tags;
    }
}

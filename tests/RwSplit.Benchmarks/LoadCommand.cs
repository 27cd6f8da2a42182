using System;
using System.Globalization;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using RwSplit.PgCluster;

namespace RwSplit.Benchmarks;

/// <summary>
/// <c>load [--duration 10] [--warmup 3] [--workers 8] [--rounds 2] [--scenario PrimaryOnly,ReadOnly,ReadHeavy,CpuHeavyRead,ReadYourWrites] [--replicas 2] [--cpu-quota cores] [--replica-quotas a,b] [--replica-weights a,b] [--balancing b] [--no-pgpool] [--smoke]</c>:
/// starts the local PostgreSQL primary and two replicas (or <c>--replicas</c> 0 to 3; base port 25450) unless <c>RWSPLIT_PG_PRIMARY</c> /
/// <c>RWSPLIT_PG_REPLICAS</c> name running servers, runs the load runner and prints its table. <c>--cpu-quota 0.25</c>
/// caps each server at a quarter of a core (its own cgroup, as root), so that the servers behave like separate
/// machines of a known size and a replica adds capacity. The read scenarios also run the peers: Npgsql's
/// multi-host data source, and pgpool-II (ports 25455, with its reset query, and 25457, without) when it is installed (else reported and skipped).
/// <c>--replica-quotas 0.25,0.5</c> gives the replicas their own quotas (replicas of different sizes), and
/// <c>--replica-weights 1,2</c> sets <see cref="RwSplitOptions.ReplicaWeights"/> on RwSplit's data sources.
/// </summary>
internal static class LoadCommand
{
    /// <summary>Ports 25450–25452: apart from the test suite's clusters (25430, 25440).</summary>
    public const int BasePort = 25450;

    public static async Task<int> RunAsync(ReadOnlyMemory<string> arguments)
    {
        var args = arguments.ToArray();
        var smoke = args.Contains("--smoke", StringComparer.OrdinalIgnoreCase);
        double? duration = null, warmup = null;
        int? workers = null, rounds = null;
        LoadScenario[]? scenarios = null;
        double? cpuQuota = null;
        var withPgPool = true;
        ReplicaBalancing? balancing = null;
        var replicas = 2;
        double[]? replicaQuotas = null;
        double[]? replicaWeights = null;
        static double[] Numbers(string list) => list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(n => double.Parse(n, CultureInfo.InvariantCulture)).ToArray();
        for (var i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
            switch (args[i].ToLowerInvariant())
            {
                case "--smoke":
                    break;
                case "--duration":
                    duration = double.Parse(Value(), CultureInfo.InvariantCulture);
                    break;
                case "--warmup":
                    warmup = double.Parse(Value(), CultureInfo.InvariantCulture);
                    break;
                case "--workers":
                    workers = int.Parse(Value(), CultureInfo.InvariantCulture);
                    break;
                case "--rounds":
                    rounds = int.Parse(Value(), CultureInfo.InvariantCulture);
                    break;
                case "--balancing":
                    balancing = Enum.Parse<ReplicaBalancing>(Value(), ignoreCase: true);
                    break;
                case "--replicas":
                    replicas = int.Parse(Value(), CultureInfo.InvariantCulture);
                    if (replicas is < 0 or > 3)
                        throw new ArgumentException("--replicas takes 0 to 3 (ports 25451-25453; pgpool-II uses 25455-25458).");
                    break;
                case "--no-pgpool":
                    withPgPool = false;
                    break;
                case "--replica-quotas":
                    replicaQuotas = Numbers(Value());
                    break;
                case "--replica-weights":
                    replicaWeights = Numbers(Value());
                    break;
                case "--cpu-quota":
                    cpuQuota = double.Parse(Value(), CultureInfo.InvariantCulture);
                    break;
                case "--scenario":
                    scenarios = Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                        .Select(s => Enum.Parse<LoadScenario>(s, ignoreCase: true)).ToArray();
                    break;
                default:
                    Console.Error.WriteLine($"Unknown argument '{args[i]}'. Usage: load [--duration s] [--warmup s] [--workers n] [--rounds n] [--scenario a,b] [--replicas 0-3] [--cpu-quota cores] [--replica-quotas a,b] [--replica-weights a,b] [--balancing RoundRobin|LeastOutstanding|LatencyAware] [--no-pgpool] [--smoke]");
                    return 2;
            }
        }

        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            cancel.Cancel();
        };

        Console.Error.WriteLine(Environment.GetEnvironmentVariable("RWSPLIT_PG_PRIMARY") is { Length: > 0 }
            ? "Using the servers of RWSPLIT_PG_PRIMARY / RWSPLIT_PG_REPLICAS."
            : $"Starting (or reusing) local PostgreSQL on ports {BasePort}-{BasePort + replicas}...");
        await using var cluster = await LocalPgCluster.StartAsync(new LocalPgClusterOptions { BasePort = BasePort, StartSecondPrimary = false, ReplicaCount = replicas, CpuQuota = cpuQuota }, cancel.Token).ConfigureAwait(false);
        if (replicaQuotas is not null)
        {
            if (cluster.IsExternal || replicaQuotas.Length != cluster.Replicas.Count)
                throw new ArgumentException($"--replica-quotas needs one quota per local replica ({cluster.Replicas.Count}).");
            for (var r = 0; r < replicaQuotas.Length; r++)
                cluster.Replicas[r].LimitCpu(replicaQuotas[r]);
        }

        var servers = string.Create(CultureInfo.InvariantCulture, $"Servers: a primary and {cluster.ReplicaConnectionStrings.Count} replica(s); ")
            + (cpuQuota is { } cores && !cluster.IsExternal
                ? string.Create(CultureInfo.InvariantCulture, $"each server (and pgpool-II) capped at {cores} CPU (cgroup v1 cpu.cfs_quota_us), the client not capped")
                : "no CPU quota: the servers and the client share the machine's cores")
            + (replicaQuotas is null ? "" : string.Create(CultureInfo.InvariantCulture, $"; the replicas capped at {string.Join(" / ", replicaQuotas)} CPU instead"))
            + (replicaWeights is null ? "" : string.Create(CultureInfo.InvariantCulture, $"; RwSplit's ReplicaWeights {string.Join(" / ", replicaWeights)}"))
            + "; no network delay (loopback).";
        Console.Error.WriteLine(servers);

        // The proxy peer, for the read scenarios: pgpool-II on ports 25455 and 25457 (with and without its reset query)
        // over the same servers, capped like them.
        PgPool? pgpool = null;
        PgPool? pgpoolNoReset = null;
        var reads = !smoke && (scenarios ?? Enum.GetValues<LoadScenario>()).Any(s => s is LoadScenario.ReadOnly or LoadScenario.ReadHeavy or LoadScenario.CpuHeavyRead);
        if (reads && withPgPool && !cluster.IsExternal && cluster.ReplicaConnectionStrings.Count > 0)
        {
            if (PgPool.Binary is null)
            {
                Console.Error.WriteLine("pgpool-II is not installed (Debian package pgpool2): its peer is skipped.");
            }
            else
            {
                pgpool = await PgPool.StartAsync(cluster, BasePort + 5, children: (workers ?? 8) + 4, cpuQuota: cpuQuota, ct: cancel.Token).ConfigureAwait(false);
                pgpoolNoReset = await PgPool.StartAsync(cluster, BasePort + 7, children: (workers ?? 8) + 4, resetQuery: "ABORT", cpuQuota: cpuQuota, ct: cancel.Token).ConfigureAwait(false);
                Console.Error.WriteLine($"pgpool-II on ports {pgpool.Port} and {pgpoolNoReset.Port} (streaming replication, statement-level load balancing; reset query 'ABORT; DISCARD ALL' on the first, 'ABORT' on the second{(cpuQuota is { } q ? $"; each capped at {q.ToString(CultureInfo.InvariantCulture)} CPU" : "")}).");
            }
        }

        await using var stopPgPool = pgpool;
        await using var stopPgPoolNoReset = pgpoolNoReset;

        var defaults = smoke
            ? LoadRunnerOptions.Smoke(cluster.PrimaryConnectionString, cluster.ReplicaConnectionStrings)
            : new LoadRunnerOptions { PrimaryConnectionString = cluster.PrimaryConnectionString, ReplicaConnectionStrings = cluster.ReplicaConnectionStrings };
        var options = new LoadRunnerOptions
        {
            PrimaryConnectionString = defaults.PrimaryConnectionString,
            ReplicaConnectionStrings = defaults.ReplicaConnectionStrings,
            Duration = duration is { } d ? TimeSpan.FromSeconds(d) : defaults.Duration,
            Warmup = warmup is { } w ? TimeSpan.FromSeconds(w) : defaults.Warmup,
            Workers = workers ?? defaults.Workers,
            Rounds = rounds ?? defaults.Rounds,
            Rows = defaults.Rows,
            Scenarios = scenarios ?? defaults.Scenarios,
            PgPoolConnectionString = pgpool?.ConnectionString,
            PgPoolNoResetConnectionString = pgpoolNoReset?.ConnectionString,
            Balancing = balancing,
            ReplicaWeights = replicaWeights,
            Log = Console.Error,
            ServerDescription = servers,
        };

        var report = await new LoadRunner(options).RunAsync(cancel.Token).ConfigureAwait(false);
        Console.WriteLine();
        Console.WriteLine(report.FormatTable());
        return report.Runs.All(r => r.Errors == 0 && r.Operations > 0) ? 0 : 1;
    }
}

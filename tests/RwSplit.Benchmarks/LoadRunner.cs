using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Npgsql;
using RwSplit.PostgreSql;
using RwSplit.Routing;

namespace RwSplit.Benchmarks;

/// <summary>A workload of the load runner.</summary>
public enum LoadScenario
{
    /// <summary>Point reads and writes (half each), all on the primary: RwSplit with <see cref="ReadConsistency.Strong"/>.</summary>
    PrimaryOnly,

    /// <summary>Point reads only: raw Npgsql on the primary vs RwSplit and the peers spreading them over the servers.</summary>
    ReadOnly,

    /// <summary>90% point reads, 10% writes: raw Npgsql on the primary vs RwSplit spreading the reads over the replicas.</summary>
    ReadHeavy,

    /// <summary>
    /// Reads that each aggregate 2,000 rows (an index range scan): the servers' CPU, not the client or the round trip,
    /// is the bottleneck.
    /// </summary>
    CpuHeavyRead,

    /// <summary>A write then a read of the same row on one connection: RwSplit with <see cref="ReadConsistency.ReadYourWrites"/>.</summary>
    ReadYourWrites,
}

/// <summary>What runs the workload: the provider alone, RwSplit over it, or a peer users would pick instead.</summary>
public enum LoadVariant
{
    /// <summary>Npgsql's own <see cref="NpgsqlDataSource"/> on the primary: the baseline.</summary>
    RawNpgsql,

    /// <summary>An <see cref="RwSplitDataSource"/> over the primary and the replicas, with its defaults.</summary>
    RwSplit,

    /// <summary>RwSplit with <see cref="RwSplitOptions.PrimaryReadWeight"/> = 0: the primary takes no reads (the default 1 lets it take them by its spare capacity).</summary>
    RwSplitReplicasOnly,

    /// <summary>RwSplit with <see cref="ReadAfterWrite.WaitForReplica"/>: a read after a write waits for a replica that has it.</summary>
    RwSplitWaitForReplica,

    /// <summary>
    /// The in-process peer: Npgsql's own multi-host data source over the primary and the replicas
    /// (<c>Load Balance Hosts=true</c>), reads through <c>WithTargetSession(PreferStandby)</c> and writes through
    /// <c>WithTargetSession(Primary)</c>, as an application splits by hand. It has no read-your-writes, so it runs only
    /// the scenarios without one (<see cref="LoadRunner.Runs"/>).
    /// </summary>
    NpgsqlMultiHost,

    /// <summary>
    /// The proxy peer: pgpool-II in front of the primary and the replicas (streaming-replication mode, statement-level
    /// load balancing, <see cref="RwSplit.PgCluster.PgPool"/>), reached through a plain <see cref="NpgsqlDataSource"/>.
    /// The read scenarios only, and only when <see cref="LoadRunnerOptions.PgPoolConnectionString"/> is set.
    /// </summary>
    PgPool,

    /// <summary>pgpool-II as <see cref="PgPool"/>, with <c>reset_query_list = 'ABORT'</c>: no <c>DISCARD ALL</c> per connection.</summary>
    PgPoolNoReset,
}

/// <summary>How the load runner runs.</summary>
public sealed class LoadRunnerOptions
{
    /// <summary>The primary's Npgsql connection string.</summary>
    public required string PrimaryConnectionString { get; init; }

    /// <summary>The replicas' Npgsql connection strings (streaming replicas of the primary).</summary>
    public IReadOnlyList<string> ReplicaConnectionStrings { get; init; } = [];

    /// <summary>How long each measured run lasts. Default 10 s.</summary>
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long each variant runs unmeasured before a scenario's measured runs. Default 3 s.</summary>
    public TimeSpan Warmup { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>Concurrent workers, each running one operation after the other. Default 8.</summary>
    public int Workers { get; init; } = 8;

    /// <summary>Measured runs of each variant per scenario, alternating (ABBA order). Default 2.</summary>
    public int Rounds { get; init; } = 2;

    /// <summary>The scenarios to run, in order. Default: all.</summary>
    public IReadOnlyList<LoadScenario> Scenarios { get; init; } = Enum.GetValues<LoadScenario>();

    /// <summary>Rows of the benchmark table. Default 10 000.</summary>
    public int Rows { get; init; } = 10_000;

    /// <summary>How RwSplit spreads reads over the replicas. Default: the data source's default.</summary>
    public ReplicaBalancing? Balancing { get; init; }

    /// <summary>RwSplit's <see cref="RwSplitOptions.ReplicaWeights"/>, one per replica; <see langword="null"/>: none (all weigh 1).</summary>
    public double[]? ReplicaWeights { get; init; }

    /// <summary>pgpool-II's connection string, when it runs in front of the same servers; <see langword="null"/>: no pgpool peer.</summary>
    public string? PgPoolConnectionString { get; init; }

    /// <summary>A second pgpool-II without reset query (<c>reset_query_list = 'ABORT'</c>); <see langword="null"/>: not run.</summary>
    public string? PgPoolNoResetConnectionString { get; init; }

    /// <summary>Progress lines; <see langword="null"/> for none.</summary>
    public TextWriter? Log { get; init; }

    /// <summary>What the servers are (count, CPU quota, network delay), printed with the figures.</summary>
    public string? ServerDescription { get; init; }

    /// <summary>Seconds, not minutes: every scenario and variant once, briefly, with two workers (for CI).</summary>
    public static LoadRunnerOptions Smoke(string primary, IReadOnlyList<string> replicas, TextWriter? log = null) => new()
    {
        PrimaryConnectionString = primary,
        ReplicaConnectionStrings = replicas,
        Duration = TimeSpan.FromSeconds(0.5),
        Warmup = TimeSpan.FromSeconds(0.2),
        Workers = 2,
        Rounds = 1,
        Rows = 1_000,
        Log = log,
    };
}

/// <summary>One measured run: a scenario, a variant, a round.</summary>
public sealed record LoadRun(
    LoadScenario Scenario,
    LoadVariant Variant,
    int Round,
    long Operations,
    long Errors,
    TimeSpan Elapsed,
    double P50Milliseconds,
    double P99Milliseconds,
    TimeSpan ClientCpu,
    IReadOnlyDictionary<string, long> StatementsPerServer,
    IReadOnlyDictionary<string, long> ReadReasons,
    string? FirstError)
{
    /// <summary>Operations per second.</summary>
    public double Throughput => Operations / Elapsed.TotalSeconds;

    /// <summary>The client process's CPU time per operation, in microseconds (all its threads: workers, pools, monitor).</summary>
    public double ClientCpuMicroseconds => Operations == 0 ? double.NaN : ClientCpu.TotalMicroseconds / Operations;
}

/// <summary>The measured runs, and the table that shows them.</summary>
public sealed class LoadReport
{
    internal LoadReport(LoadRunnerOptions options, IReadOnlyList<LoadRun> runs)
    {
        Options = options;
        Runs = runs;
    }

    public LoadRunnerOptions Options { get; }

    public IReadOnlyList<LoadRun> Runs { get; }

    /// <summary>RwSplit's throughput over the baseline's, in the same round.</summary>
    public double? Ratio(LoadScenario scenario, int round) => Ratio(scenario, round, LoadVariant.RwSplit);

    /// <summary>A variant's throughput over the baseline's, in the same round.</summary>
    public double? Ratio(LoadScenario scenario, int round, LoadVariant variant)
    {
        var raw = Runs.FirstOrDefault(r => r.Scenario == scenario && r.Round == round && r.Variant == LoadVariant.RawNpgsql);
        var other = Runs.FirstOrDefault(r => r.Scenario == scenario && r.Round == round && r.Variant == variant);
        return raw is null || other is null || raw.Operations == 0 ? null : other.Throughput / raw.Throughput;
    }

    /// <summary>A Markdown table: one row per run, in the order they ran.</summary>
    public string FormatTable()
    {
        var text = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        if (Options.ServerDescription is { } servers)
            text.AppendLine(servers);
        text.AppendLine(inv, $"{Options.Workers} workers, {Options.Duration.TotalSeconds:0.#} s per run after {Options.Warmup.TotalSeconds:0.#} s of warm-up per variant; an operation is open connection + statement(s) + close. Client CPU: the load runner's process time per operation.");
        text.AppendLine();
        text.AppendLine("| Scenario | Variant | Round | ops/s | p50 ms | p99 ms | vs raw | client CPU µs/op | Errors | Statements per server | Read routing reasons |");
        text.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|");
        foreach (var run in Runs)
        {
            var ratio = run.Variant != LoadVariant.RawNpgsql && Ratio(run.Scenario, run.Round, run.Variant) is { } r ? r.ToString("0.000", inv) : "1 (baseline)";
            text.AppendLine(inv, $"| {run.Scenario} | {run.Variant} | {run.Round} | {run.Throughput:0} | {run.P50Milliseconds:0.000} | {run.P99Milliseconds:0.000} | {ratio} | {run.ClientCpuMicroseconds:0} | {run.Errors} | {Shares(run.StatementsPerServer)} | {Shares(run.ReadReasons)} |");
        }

        var failures = Runs.Where(r => r.FirstError is not null).ToList();
        foreach (var run in failures)
            text.AppendLine(inv, $"First error of {run.Scenario}/{run.Variant}/{run.Round}: {run.FirstError}");
        return text.ToString();
    }

    private static string Shares(IReadOnlyDictionary<string, long> counts)
    {
        var total = counts.Values.Sum();
        if (total == 0)
            return "";
        return string.Join(", ", counts.OrderBy(c => c.Key, StringComparer.Ordinal)
            .Select(c => string.Create(CultureInfo.InvariantCulture, $"{c.Key} {100.0 * c.Value / total:0.0}%")));
    }
}

/// <summary>
/// Drives real PostgreSQL servers with N concurrent workers for a fixed time per run, through raw Npgsql and through
/// RwSplit, alternating the two (ABBA) so that drift on a busy machine hits both alike, and reports throughput, p50/p99
/// latency, the ratio to the baseline and, for RwSplit, where statements ran.
/// </summary>
public sealed class LoadRunner
{
    private const string Table = "rwsplit_bench_items";
    private const string PointRead = "SELECT v FROM " + Table + " WHERE id = $1";
    private const string PointWrite = "UPDATE " + Table + " SET v = v + 1 WHERE id = $1";
    private const string WriteReturning = "UPDATE " + Table + " SET v = v + 1 WHERE id = $1 RETURNING v";
    private const string RangeRead = "SELECT sum(v + length(note)) FROM " + Table + " WHERE id >= $1 AND id < $1 + 2000";

    private readonly LoadRunnerOptions _options;
    private readonly Dictionary<int, string> _ports = new();

    public LoadRunner(LoadRunnerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Workers, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Rounds, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.Duration, TimeSpan.Zero);
        _options = options;
        _ports[new NpgsqlConnectionStringBuilder(options.PrimaryConnectionString).Port] = "primary";
        for (var i = 0; i < options.ReplicaConnectionStrings.Count; i++)
            _ports.TryAdd(new NpgsqlConnectionStringBuilder(options.ReplicaConnectionStrings[i]).Port, "replica" + (i + 1).ToString(CultureInfo.InvariantCulture));
    }

    public async Task<LoadReport> RunAsync(CancellationToken cancellationToken = default)
    {
        await PrepareTableAsync(cancellationToken).ConfigureAwait(false);
        var runs = new List<LoadRun>();
        var raw = NpgsqlDataSource.Create(_options.PrimaryConnectionString);
        var pgpool = NpgsqlDataSource.Create(_options.PgPoolConnectionString ?? _options.PrimaryConnectionString); // opened only when its variant runs
        var pgpoolNoReset = NpgsqlDataSource.Create(_options.PgPoolNoResetConnectionString ?? _options.PrimaryConnectionString);
        await using (raw.ConfigureAwait(false))
        await using (pgpool.ConfigureAwait(false))
        await using (pgpoolNoReset.ConfigureAwait(false))
        {
            foreach (var scenario in _options.Scenarios)
            {
                var rwsplit = CreateRwSplit(scenario, LoadVariant.RwSplit);
                var rwsplitVariant = CreateRwSplit(scenario, scenario == LoadScenario.ReadYourWrites ? LoadVariant.RwSplitWaitForReplica : LoadVariant.RwSplitReplicasOnly);
                var multiHost = CreateMultiHost(); // connects only when its variant runs
                await using (rwsplit.ConfigureAwait(false))
                await using (rwsplitVariant.ConfigureAwait(false))
                await using (multiHost.ConfigureAwait(false))
                {
                    await rwsplit.RefreshTopologyAsync(cancellationToken).ConfigureAwait(false);
                    await rwsplitVariant.RefreshTopologyAsync(cancellationToken).ConfigureAwait(false);
                    (DbDataSource Reads, DbDataSource Writes) Source(LoadVariant v) => v switch
                    {
                        LoadVariant.RawNpgsql => (raw, raw),
                        LoadVariant.RwSplit => (rwsplit, rwsplit),
                        LoadVariant.RwSplitReplicasOnly or LoadVariant.RwSplitWaitForReplica => (rwsplitVariant, rwsplitVariant),
                        LoadVariant.PgPool => (pgpool, pgpool),
                        LoadVariant.PgPoolNoReset => (pgpoolNoReset, pgpoolNoReset),
                        _ => (multiHost.WithTargetSession(TargetSessionAttributes.PreferStandby), multiHost.WithTargetSession(TargetSessionAttributes.Primary)),
                    };

                    var variants = Runs(scenario, _options.PgPoolConnectionString is not null, _options.PgPoolNoResetConnectionString is not null);
                    foreach (var variant in variants)
                    {
                        Log($"{scenario}: warming up {variant}");
                        await RunOnceAsync(scenario, variant, Source(variant), 0, _options.Warmup, cancellationToken).ConfigureAwait(false);
                    }

                    for (var round = 1; round <= _options.Rounds; round++)
                    {
                        // ABBA: the variants in order in odd rounds (raw first), reversed in even ones.
                        var order = round % 2 == 1 ? variants : variants.Reverse().ToArray();
                        foreach (var variant in order)
                        {
                            var run = await RunOnceAsync(scenario, variant, Source(variant), round, _options.Duration, cancellationToken).ConfigureAwait(false);
                            Log(string.Create(CultureInfo.InvariantCulture, $"{scenario} {variant} round {round}: {run.Throughput:0} ops/s, p50 {run.P50Milliseconds:0.000} ms, p99 {run.P99Milliseconds:0.000} ms, {run.Errors} errors"));
                            runs.Add(run);
                        }
                    }
                }
            }
        }

        runs.Sort((a, b) => a.Scenario != b.Scenario ? a.Scenario.CompareTo(b.Scenario) : a.Round != b.Round ? a.Round.CompareTo(b.Round) : a.Variant.CompareTo(b.Variant));
        return new LoadReport(_options, runs);
    }

    /// <summary>
    /// The variants a scenario runs: raw Npgsql and RwSplit always; RwSplit waiting for a replica where a read follows
    /// a write; RwSplit keeping the primary for writes and the peers (Npgsql multi-host, pgpool-II when it runs) where no read
    /// must see a write.
    /// </summary>
    public static LoadVariant[] Runs(LoadScenario scenario, bool withPgPool = false, bool withPgPoolNoReset = false)
    {
        switch (scenario)
        {
            case LoadScenario.PrimaryOnly:
                return [LoadVariant.RawNpgsql, LoadVariant.RwSplit];
            case LoadScenario.ReadYourWrites:
                return [LoadVariant.RawNpgsql, LoadVariant.RwSplit, LoadVariant.RwSplitWaitForReplica];
        }

        var variants = new List<LoadVariant> { LoadVariant.RawNpgsql, LoadVariant.RwSplit, LoadVariant.RwSplitReplicasOnly, LoadVariant.NpgsqlMultiHost };
        if (withPgPool)
            variants.Add(LoadVariant.PgPool);
        if (withPgPoolNoReset)
            variants.Add(LoadVariant.PgPoolNoReset);
        return [.. variants];
    }

    /// <summary>Npgsql's multi-host data source over the primary and the replicas, balancing over the hosts.</summary>
    private NpgsqlMultiHostDataSource CreateMultiHost()
    {
        var primary = new NpgsqlConnectionStringBuilder(_options.PrimaryConnectionString);
        var hosts = new[] { primary }.Concat(_options.ReplicaConnectionStrings.Select(r => new NpgsqlConnectionStringBuilder(r)))
            .Select(b => $"{b.Host}:{b.Port.ToString(CultureInfo.InvariantCulture)}");
        var builder = new NpgsqlConnectionStringBuilder(_options.PrimaryConnectionString) { Host = string.Join(",", hosts), LoadBalanceHosts = true };
        builder.Remove("Port");
        return new NpgsqlDataSourceBuilder(builder.ConnectionString).BuildMultiHost();
    }

    private RwSplitDataSource CreateRwSplit(LoadScenario scenario, LoadVariant variant) => RwSplitDataSource.Create(o =>
    {
        o.UseNpgsql();
        o.Name = "load-" + scenario.ToString().ToLowerInvariant() + (variant == LoadVariant.RwSplit ? "" : "-" + variant.ToString().ToLowerInvariant());
        o.Primary = _options.PrimaryConnectionString;
        foreach (var replica in _options.ReplicaConnectionStrings)
            o.Replicas.Add(replica);
        o.Consistency = scenario == LoadScenario.PrimaryOnly ? ReadConsistency.Strong : ReadConsistency.ReadYourWrites;
        if (_options.Balancing is { } balancing)
            o.Balancing = balancing;
        foreach (var weight in _options.ReplicaWeights ?? [])
            o.ReplicaWeights.Add(weight);
        if (variant == LoadVariant.RwSplitReplicasOnly)
            o.PrimaryReadWeight = 0;
        if (variant == LoadVariant.RwSplitWaitForReplica)
            o.ReadAfterWrite = ReadAfterWrite.WaitForReplica;
    });

    private async Task<LoadRun> RunOnceAsync(LoadScenario scenario, LoadVariant variant, (DbDataSource Reads, DbDataSource Writes) dataSource, int round, TimeSpan duration, CancellationToken cancellationToken)
    {
        var workers = new Worker[_options.Workers];
        for (var i = 0; i < workers.Length; i++)
            workers[i] = new Worker(scenario, dataSource.Reads, dataSource.Writes, _ports, _options.Rows, seed: (round * 1000) + i);

        var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
        var start = Stopwatch.GetTimestamp();
        var deadline = start + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        await Task.WhenAll(workers.Select(w => Task.Run(() => w.RunAsync(deadline, cancellationToken), cancellationToken))).ConfigureAwait(false);
        var elapsed = Stopwatch.GetElapsedTime(start);
        var clientCpu = Process.GetCurrentProcess().TotalProcessorTime - cpuBefore;

        var latencies = workers.SelectMany(w => w.Latencies).ToArray();
        Array.Sort(latencies);
        var perServer = new SortedDictionary<string, long>(StringComparer.Ordinal);
        var reasons = new SortedDictionary<string, long>(StringComparer.Ordinal);
        foreach (var worker in workers)
        {
            Merge(perServer, worker.PerServer);
            Merge(reasons, worker.ReadReasons);
        }

        return new LoadRun(
            scenario,
            variant,
            round,
            latencies.Length,
            workers.Sum(w => w.Errors),
            elapsed,
            Percentile(latencies, 0.50),
            Percentile(latencies, 0.99),
            clientCpu,
            perServer,
            reasons,
            workers.Select(w => w.FirstError).FirstOrDefault(e => e is not null));
    }

    private static void Merge(SortedDictionary<string, long> into, Dictionary<string, long> from)
    {
        foreach (var (key, count) in from)
            into[key] = into.GetValueOrDefault(key) + count;
    }

    private static double Percentile(long[] sortedTicks, double p)
    {
        if (sortedTicks.Length == 0)
            return double.NaN;
        var index = (int)Math.Min(sortedTicks.Length - 1, Math.Ceiling(p * sortedTicks.Length) - 1);
        return sortedTicks[Math.Max(0, index)] * 1000.0 / Stopwatch.Frequency;
    }

    private void Log(string message) => _options.Log?.WriteLine($"[{DateTime.Now:HH:mm:ss}] {message}");

    /// <summary>(Re)creates the benchmark table on the primary and waits until every replica has replayed it.</summary>
    private async Task PrepareTableAsync(CancellationToken cancellationToken)
    {
        var primary = new NpgsqlConnection(_options.PrimaryConnectionString);
        await using (primary.ConfigureAwait(false))
        {
            await primary.OpenAsync(cancellationToken).ConfigureAwait(false);
            var create = new NpgsqlCommand(
                $"""
                DROP TABLE IF EXISTS {Table};
                CREATE TABLE {Table} (id int PRIMARY KEY, v bigint NOT NULL, note text NOT NULL);
                INSERT INTO {Table} SELECT g, 0, 'row ' || g FROM generate_series(1, {_options.Rows.ToString(CultureInfo.InvariantCulture)}) g;
                ANALYZE {Table};
                """,
                primary);
            await using (create.ConfigureAwait(false))
                await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);

            var lsn = new NpgsqlCommand("SELECT pg_current_wal_lsn()::text", primary);
            string target;
            await using (lsn.ConfigureAwait(false))
                target = (string)(await lsn.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;

            foreach (var replica in _options.ReplicaConnectionStrings)
                await WaitForReplayAsync(replica, target, cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task WaitForReplayAsync(string replica, string targetLsn, CancellationToken cancellationToken)
    {
        var connection = new NpgsqlConnection(replica);
        await using (connection.ConfigureAwait(false))
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            var command = new NpgsqlCommand("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", connection);
            await using (command.ConfigureAwait(false))
            {
                command.Parameters.Add(new NpgsqlParameter { Value = targetLsn });
                var deadline = Stopwatch.StartNew();
                while (await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is not true)
                {
                    if (deadline.Elapsed > TimeSpan.FromSeconds(30))
                        throw new TimeoutException($"The replica {new NpgsqlConnectionStringBuilder(replica).Port} did not replay the benchmark table within 30 s.");
                    await Task.Delay(20, cancellationToken).ConfigureAwait(false);
                }
            }
        }
    }

    /// <summary>
    /// One worker: operations back to back until the deadline, each timed; the same code for every variant. Reads open
    /// their connection from <c>reads</c>, writes (and write-then-read pairs) from <c>writes</c>: the same data source
    /// for raw Npgsql and RwSplit, the two target-session views of Npgsql's multi-host data source for that peer.
    /// </summary>
    private sealed class Worker
    {
        private readonly LoadScenario _scenario;
        private readonly DbDataSource _reads;
        private readonly DbDataSource _writes;
        private readonly IReadOnlyDictionary<int, string> _ports;
        private readonly int _rows;
        private readonly Random _random;

        public Worker(LoadScenario scenario, DbDataSource reads, DbDataSource writes, IReadOnlyDictionary<int, string> ports, int rows, int seed)
        {
            _scenario = scenario;
            _reads = reads;
            _writes = writes;
            _ports = ports;
            _rows = rows;
            _random = new Random(seed);
        }

        public List<long> Latencies { get; } = new(capacity: 16_384);

        public Dictionary<string, long> PerServer { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, long> ReadReasons { get; } = new(StringComparer.Ordinal);

        public long Errors { get; private set; }

        public string? FirstError { get; private set; }

        public async Task RunAsync(long deadline, CancellationToken cancellationToken)
        {
            while (Stopwatch.GetTimestamp() < deadline && !cancellationToken.IsCancellationRequested)
            {
                var id = _random.Next(1, _rows + 1);
                var dice = _random.Next(100);
                var started = Stopwatch.GetTimestamp();
                try
                {
                    switch (_scenario)
                    {
                        case LoadScenario.PrimaryOnly:
                            await SingleStatementAsync(dice < 50, id, cancellationToken).ConfigureAwait(false);
                            break;
                        case LoadScenario.ReadOnly:
                            await SingleStatementAsync(read: true, id, cancellationToken).ConfigureAwait(false);
                            break;
                        case LoadScenario.ReadHeavy:
                            await SingleStatementAsync(dice < 90, id, cancellationToken).ConfigureAwait(false);
                            break;
                        case LoadScenario.CpuHeavyRead:
                            await SingleStatementAsync(read: true, id, cancellationToken, RangeRead).ConfigureAwait(false);
                            break;
                        default:
                            await WriteThenReadAsync(id, cancellationToken).ConfigureAwait(false);
                            break;
                    }

                    Latencies.Add(Stopwatch.GetTimestamp() - started);
                }
#pragma warning disable CA1031 // Every failure is an error of the run, counted and reported; the run goes on.
                catch (Exception ex) when (ex is not OperationCanceledException)
#pragma warning restore CA1031
                {
                    Errors++;
                    FirstError ??= $"{ex.GetType().Name}: {ex.Message}";
                }
            }
        }

        private async Task SingleStatementAsync(bool read, int id, CancellationToken cancellationToken, string? readText = null)
        {
            var connection = await (read ? _reads : _writes).OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using (connection.ConfigureAwait(false))
            {
                var command = Command(connection, read ? readText ?? PointRead : PointWrite, id);
                await using (command.ConfigureAwait(false))
                {
                    if (read)
                        await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
                    else
                        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                    Count(command, read);
                }
            }
        }

        private async Task WriteThenReadAsync(int id, CancellationToken cancellationToken)
        {
            var connection = await _writes.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using (connection.ConfigureAwait(false))
            {
                long written;
                var write = Command(connection, WriteReturning, id);
                await using (write.ConfigureAwait(false))
                {
                    written = (long)(await write.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
                    Count(write, read: false);
                }

                var read = Command(connection, PointRead, id);
                await using (read.ConfigureAwait(false))
                {
                    var seen = (long)(await read.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
                    Count(read, read: true);
                    if (seen < written) // v only grows: a smaller value is a read that missed this session's write
                        throw new StaleReadException($"Row {id}: wrote v = {written}, then read v = {seen} on {Where(read)}.");
                }
            }
        }

        private static DbCommand Command(DbConnection connection, string text, int id)
        {
            var command = connection.CreateCommand();
            command.CommandText = text;
            var parameter = command.CreateParameter();
            parameter.Value = id;
            command.Parameters.Add(parameter);
            return command;
        }

        private void Count(DbCommand command, bool read)
        {
            var server = Where(command);
            PerServer[server] = PerServer.GetValueOrDefault(server) + 1;
            if (read && command is RwSplitCommand { LastDecision: { } decision })
            {
                var reason = decision.Reason.ToString();
                ReadReasons[reason] = ReadReasons.GetValueOrDefault(reason) + 1;
            }
        }

        private string Where(DbCommand command) => command switch
        {
            RwSplitCommand { LastDecision: { } decision } => decision.Target == RouteTarget.Replica ? "replica" + (decision.ReplicaIndex + 1).ToString(CultureInfo.InvariantCulture) : "primary",
            { Connection: NpgsqlConnection npgsql } when _ports.TryGetValue(npgsql.Port, out var name) => name, // the multi-host peer: the host it chose
            { Connection: NpgsqlConnection } => "via pgpool", // pgpool chooses the server: not seen from the client
            _ => "primary",
        };
    }

    private sealed class StaleReadException(string message) : Exception(message);
}

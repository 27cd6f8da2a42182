using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Npgsql;
using RwSplit.PgCluster;
using RwSplit.PostgreSql;

namespace RwSplit.Benchmarks;

/// <summary>
/// <c>growth [--texts 100000] [--connections 10000] [--replicas 50]</c>: how time and memory grow with the application's
/// size, on the local primary and two replicas (ports 25450–25452): distinct statement texts (through RwSplit and raw
/// Npgsql alike), logical connections held open at once, and replicas in the topology (the monitor's cost). Prints one
/// Markdown table per dimension, with managed memory after a full collection and the process's CPU time.
/// </summary>
internal static class GrowthCommand
{
    private const string Table = "rwsplit_growth";

    public static async Task<int> RunAsync(ReadOnlyMemory<string> arguments)
    {
        var args = arguments.ToArray();
        var texts = 100_000;
        var connections = 10_000;
        var replicas = 50;
        for (var i = 0; i < args.Length; i++)
        {
            int Value() => i + 1 < args.Length ? int.Parse(args[++i], CultureInfo.InvariantCulture) : throw new ArgumentException($"{args[i]} needs a value.");
            switch (args[i].ToLowerInvariant())
            {
                case "--texts":
                    texts = Value();
                    break;
                case "--connections":
                    connections = Value();
                    break;
                case "--replicas":
                    replicas = Value();
                    break;
                default:
                    Console.Error.WriteLine($"Unknown argument '{args[i]}'. Usage: growth [--texts n] [--connections n] [--replicas n]");
                    return 2;
            }
        }

        await using var cluster = await LocalPgCluster.StartAsync(new LocalPgClusterOptions { BasePort = LoadCommand.BasePort, StartSecondPrimary = false }).ConfigureAwait(false);
        await PrepareAsync(cluster).ConfigureAwait(false);
        Console.WriteLine("Servers: a primary and 2 replicas on this machine (2 cores shared with the client), no CPU quota, no network delay.");
        Console.WriteLine();
        await StatementTextsAsync(cluster, texts).ConfigureAwait(false);
        await HeldConnectionsAsync(cluster, connections).ConfigureAwait(false);
        await ManyReplicasAsync(cluster, replicas).ConfigureAwait(false);
        return 0;
    }

    private static async Task PrepareAsync(LocalPgCluster cluster)
    {
        await using var connection = new NpgsqlConnection(cluster.PrimaryConnectionString);
        await connection.OpenAsync().ConfigureAwait(false);
        await using var command = new NpgsqlCommand($"DROP TABLE IF EXISTS {Table}; CREATE TABLE {Table} (id int PRIMARY KEY, v int NOT NULL); INSERT INTO {Table} SELECT g, g FROM generate_series(1, 1000) g;", connection);
        await command.ExecuteNonQueryAsync().ConfigureAwait(false);
        await cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
    }

    private static RwSplitDataSource CreateRwSplit(LocalPgCluster cluster, IEnumerable<string> replicas, string name) => RwSplitDataSource.Create(o =>
    {
        o.UseNpgsql();
        o.Name = name;
        o.Primary = cluster.PrimaryConnectionString;
        foreach (var replica in replicas)
            o.Replicas.Add(replica);
        o.Consistency = ReadConsistency.Eventual;
    });

    private static long ManagedBytes()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return GC.GetTotalMemory(forceFullCollection: true);
    }

    private static string Mb(long bytes) => (bytes / 1024.0 / 1024.0).ToString("0.0", CultureInfo.InvariantCulture);

    /// <summary>
    /// Distinct texts (literals, as code that does not parameterise sends them), 8 workers, in blocks of a tenth: the
    /// statement cache (10,000 entries by default) bounds what RwSplit keeps; each block's rate says whether the
    /// classification of texts never seen costs more as the cache churns.
    /// </summary>
    private static async Task StatementTextsAsync(LocalPgCluster cluster, int count)
    {
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"### {count:N0} distinct statement texts (8 workers, each text once)"));
        Console.WriteLine();
        Console.WriteLine("| variant | block | texts/s | managed MB after the block |");
        Console.WriteLine("|---|---:|---:|---:|");
        var raw = NpgsqlDataSource.Create(cluster.PrimaryConnectionString);
        var rwsplit = CreateRwSplit(cluster, cluster.ReplicaConnectionStrings, "growth-texts");
        await using (raw.ConfigureAwait(false))
        await using (rwsplit.ConfigureAwait(false))
        {
            await rwsplit.RefreshTopologyAsync().ConfigureAwait(false);
            foreach (var (name, source) in new (string, DbDataSource)[] { ("raw Npgsql (primary)", raw), ("RwSplit", rwsplit) })
            {
                var blocks = 10;
                var perBlock = count / blocks;
                for (var block = 0; block < blocks; block++)
                {
                    var next = block * perBlock;
                    var end = next + perBlock;
                    var watch = Stopwatch.StartNew();
                    await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
                    {
                        var connection = await source.OpenConnectionAsync().ConfigureAwait(false);
                        await using (connection.ConfigureAwait(false))
                        {
                            int n;
                            while ((n = Interlocked.Increment(ref next)) <= end)
                            {
                                var command = connection.CreateCommand();
                                await using (command.ConfigureAwait(false))
                                {
                                    // A distinct text per statement: the literal and a trailing number differ.
                                    command.CommandText = string.Create(CultureInfo.InvariantCulture, $"SELECT v FROM {Table} WHERE id = {(n % 1000) + 1} AND v > -{n}");
                                    await command.ExecuteScalarAsync().ConfigureAwait(false);
                                }
                            }
                        }
                    }))).ConfigureAwait(false);
                    var rate = perBlock / watch.Elapsed.TotalSeconds;
                    if (block is 0 or 1 or 4 or 9)
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {name} | {block + 1} | {rate:0} | {Mb(ManagedBytes())} |"));
                }
            }
        }

        Console.WriteLine();
    }

    /// <summary>
    /// Logical connections opened and held at once, without a command: RwSplit opens provider connections lazily, so
    /// holding them costs memory only; then every one of them runs one read in turn, in batches as wide as the pool.
    /// </summary>
    private static async Task HeldConnectionsAsync(LocalPgCluster cluster, int count)
    {
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"### {count:N0} logical connections held open at once"));
        Console.WriteLine();
        var rwsplit = CreateRwSplit(cluster, cluster.ReplicaConnectionStrings, "growth-connections");
        await using (rwsplit.ConfigureAwait(false))
        {
            await rwsplit.RefreshTopologyAsync().ConfigureAwait(false);
            var before = ManagedBytes();
            var watch = Stopwatch.StartNew();
            var held = new List<RwSplitConnection>(count);
            for (var i = 0; i < count; i++)
                held.Add(await rwsplit.OpenConnectionAsync().ConfigureAwait(false));
            var opened = watch.Elapsed;
            var after = ManagedBytes();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"- opened in {opened.TotalMilliseconds:0} ms ({opened.TotalMilliseconds * 1000 / count:0.0} µs each); managed memory {Mb(before)} → {Mb(after)} MB, {(after - before) / (double)count:0} bytes per open logical connection; physical connections opened: none."));

            // Each runs one read, 50 at a time; each closes after its read, so the physical connections go back to the pool.
            watch.Restart();
            for (var start = 0; start < held.Count; start += 50)
            {
                await Task.WhenAll(held.Skip(start).Take(50).Select(async connection =>
                {
                    var command = connection.CreateCommand();
                    await using (command.ConfigureAwait(false))
                    {
                        command.CommandText = $"SELECT v FROM {Table} WHERE id = 1";
                        await command.ExecuteScalarAsync().ConfigureAwait(false);
                    }

                    await connection.CloseAsync().ConfigureAwait(false);
                })).ConfigureAwait(false);
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"- then one read on each, 50 at a time, closing each after its read: {watch.Elapsed.TotalMilliseconds:0} ms ({count / watch.Elapsed.TotalSeconds:0} reads/s)."));
            foreach (var connection in held)
                await connection.DisposeAsync().ConfigureAwait(false);
        }

        Console.WriteLine();
    }

    /// <summary>
    /// Replicas in the topology: the two real replicas listed many times, each entry another database on them (the
    /// validator refuses an endpoint listed twice), so the monitor probes that many endpoints every second. Measured: the process's CPU time over 10 idle seconds,
    /// managed memory, and the rate of sequential reads once every endpoint has been used.
    /// </summary>
    private static async Task ManyReplicasAsync(LocalPgCluster cluster, int count)
    {
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"### {count} replicas in the topology (the 2 real replicas, each listed {(count + 1) / 2} times with another database), health probes every second"));
        Console.WriteLine();
        Console.WriteLine("| replicas | process CPU over 10 s idle, ms | managed MB | sequential reads/s | raw Npgsql, the same endpoints in turn, reads/s | where they ran |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---|");
        await using (var primary = new NpgsqlConnection(cluster.PrimaryConnectionString))
        {
            await primary.OpenAsync().ConfigureAwait(false);
            for (var k = 0; k < (count + 1) / 2; k++)
            {
                var name = "growth_" + k.ToString(CultureInfo.InvariantCulture);
                await using var exists = new NpgsqlCommand($"SELECT count(*) FROM pg_database WHERE datname = '{name}'", primary);
                if ((long)(await exists.ExecuteScalarAsync().ConfigureAwait(false))! == 0)
                {
                    await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", primary);
                    await create.ExecuteNonQueryAsync().ConfigureAwait(false);
                }
            }
        }

        await cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(60)).ConfigureAwait(false);
        var sizes = new[] { 2, count };
        var entries = sizes.Select(n => Enumerable.Range(0, n).Select(i =>
        {
            var entry = new NpgsqlConnectionStringBuilder(cluster.ReplicaConnectionStrings[i % 2]) { MaxPoolSize = 4 };
            if (n > 2)
                entry.Database = "growth_" + (i / 2).ToString(CultureInfo.InvariantCulture);
            return entry.ConnectionString;
        }).ToArray()).ToArray();
        var rwsplit = new RwSplitDataSource[sizes.Length];
        var idle = new (TimeSpan Cpu, long Memory)[sizes.Length];
        var raw = entries.Select(e => e.Select(c => NpgsqlDataSource.Create(c)).ToArray()).ToArray();
        try
        {
            for (var s = 0; s < sizes.Length; s++)
            {
                var before = ManagedBytes();
                rwsplit[s] = CreateRwSplit(cluster, entries[s], "growth-replicas-" + sizes[s].ToString(CultureInfo.InvariantCulture));
                await rwsplit[s].RefreshTopologyAsync().ConfigureAwait(false);
                var process = Process.GetCurrentProcess();
                var cpu = process.TotalProcessorTime;
                await Task.Delay(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
                process.Refresh();
                idle[s] = (process.TotalProcessorTime - cpu, ManagedBytes() - before);
                await rwsplit[s].DisposeAsync().ConfigureAwait(false); // measured alone: the other's monitor is not counted
            }

            for (var s = 0; s < sizes.Length; s++)
            {
                rwsplit[s] = CreateRwSplit(cluster, entries[s], "growth-replicas-" + sizes[s].ToString(CultureInfo.InvariantCulture));
                await rwsplit[s].RefreshTopologyAsync().ConfigureAwait(false);
            }

            // Sequential reads (open, SELECT 1, close), the four ways taking turns read by read, so that the machine's
            // drift (a 3-second rate varies by 2x here) falls on all alike: RwSplit over 2 and over many endpoints, and
            // raw Npgsql over the same endpoints in turn (one data source each, as RwSplit's round-robin spreads new
            // connections). Warm-up: every endpoint's pool opens its first connections (and Npgsql loads its types).
            var where = sizes.Select(_ => new SortedDictionary<string, int>(StringComparer.Ordinal)).ToArray();
            var ticks = new long[2 * sizes.Length];
            var reads = 0;
            for (var i = -4 * count; i < 0 || ticks.Sum() < 12 * Stopwatch.Frequency; i++)
            {
                for (var way = 0; way < ticks.Length; way++)
                {
                    var s = way / 2;
                    var start = Stopwatch.GetTimestamp();
                    if (way % 2 == 0)
                    {
                        var decision = await RwSplitReadAsync(rwsplit[s]).ConfigureAwait(false);
                        if (i >= 0)
                            where[s][decision] = where[s].GetValueOrDefault(decision) + 1;
                    }
                    else
                    {
                        await RawReadAsync(raw[s][((i % raw[s].Length) + raw[s].Length) % raw[s].Length]).ConfigureAwait(false);
                    }

                    if (i >= 0)
                        ticks[way] += Stopwatch.GetTimestamp() - start;
                }

                if (i >= 0)
                    reads++;
            }

            for (var s = 0; s < sizes.Length; s++)
            {
                double Rate(int way) => reads / (ticks[way] / (double)Stopwatch.Frequency);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {sizes[s]} | {idle[s].Cpu.TotalMilliseconds:0} | {Mb(idle[s].Memory)} | {Rate(2 * s):0} | {Rate((2 * s) + 1):0} | {string.Join(", ", where[s].Select(w => $"{w.Key} {w.Value}"))} |"));
            }
        }
        finally
        {
            foreach (var dataSource in rwsplit)
            {
                if (dataSource is not null)
                    await dataSource.DisposeAsync().ConfigureAwait(false);
            }

            foreach (var source in raw.SelectMany(r => r))
                await source.DisposeAsync().ConfigureAwait(false);
        }

        Console.WriteLine();
    }

    private static async Task<string> RwSplitReadAsync(RwSplitDataSource dataSource)
    {
        var connection = await dataSource.OpenConnectionAsync().ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var command = connection.CreateCommand();
            await using (command.ConfigureAwait(false))
            {
                command.CommandText = "SELECT 1";
                await command.ExecuteScalarAsync().ConfigureAwait(false);
                return command.LastDecision is { } d ? $"{d.Target} ({d.Reason})" : "?";
            }
        }
    }

    private static async Task RawReadAsync(NpgsqlDataSource dataSource)
    {
        var connection = await dataSource.OpenConnectionAsync().ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            await using var command = new NpgsqlCommand("SELECT 1", connection);
            await command.ExecuteScalarAsync().ConfigureAwait(false);
        }
    }
}

using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using System.Transactions;
using Npgsql;
using RwSplit.PgCluster;

namespace RwSplit.TransferWorkload;

/// <summary>
/// Transfer throughput, RwSplit against its baselines in one run (issue 5, part 4): a distributed commit across two
/// servers through RwSplit vs Npgsql's own TransactionScope two-phase commit vs a local transaction in one database;
/// and RwSplit's one-branch path (TransactionScope, one database) vs a raw local transaction, with the baselines that
/// separate the costs: Npgsql's own TransactionScope on one database, RwSplit's local transaction, RwSplit's async API.
/// <c>RWSPLIT_THROUGHPUT_FILTER</c> keeps only the variants whose name contains it.
/// </summary>
public static class Throughput
{
    public static async Task<int> RunAsync(int seconds, int workers, int rounds)
    {
        if (int.TryParse(Environment.GetEnvironmentVariable("RWSPLIT_MIN_THREADS"), out var minThreads))
            ThreadPool.SetMinThreads(minThreads, minThreads);
        await using var cluster = await LocalPgCluster.StartAsync(new LocalPgClusterOptions { BasePort = 25460, ReplicaCount = 0, StartSecondPrimary = true });
        var bank = new Bank(cluster.PrimaryConnectionString, cluster.SecondPrimaryConnectionString);
        await bank.ResetAsync();
        var (first, second) = bank.CreateDataSources("rwsplit-throughput");
        await using var raw1 = NpgsqlDataSource.Create(bank.Database1);
        try
        {
            var variants = new (string Name, Func<Random, Task> Transfer)[]
            {
                ("RwSplit: TransactionScope across 2 servers (2PC, decision row)", r => Bank.TransferAsync(first, second, From(r), To(r), 1)),
                ("Npgsql: TransactionScope across 2 servers (Enlist=true, its own 2PC)", r => Bank.TransferWithNpgsqlAsync(bank.Database1, bank.Database2, From(r), To(r), 1)),
                ("Raw Npgsql: local transaction, both updates in 1 database", r => LocalTransferAsync(raw1, From(r), To(r))),
                ("RwSplit: TransactionScope, both updates in 1 database (one branch, 1PC)", r => Bank.TransferAsync(first, first, From(r), To(r), 1)),
                ("RwSplit: async API (RwSplitDistributedTransaction) across 2 servers", r => Bank.TransferWithRwSplitApiAsync(first, second, From(r), To(r), 1)),
                ("Npgsql: TransactionScope, both updates in 1 database (Enlist=true, local commit)", r => Bank.TransferWithNpgsqlAsync(bank.Database1, bank.Database1, From(r), To(r), 1)),
                ("RwSplit: local transaction, both updates in 1 database", r => LocalTransferAsync(first, From(r), To(r))),
            };
            if (Environment.GetEnvironmentVariable("RWSPLIT_THROUGHPUT_FILTER") is { Length: > 0 } filter)
                variants = variants.Where(v => v.Name.Contains(filter, StringComparison.OrdinalIgnoreCase)).ToArray();

            var results = variants.ToDictionary(v => v.Name, _ => new List<(double Ops, double P50, double P99, double CpuUs)>());
            for (var round = 0; round < rounds; round++)
            {
                var order = round % 2 == 0 ? variants : variants.Reverse().ToArray();
                foreach (var (name, transfer) in order)
                {
                    await MeasureAsync(transfer, workers, TimeSpan.FromSeconds(1)); // warm-up
                    results[name].Add(await MeasureAsync(transfer, workers, TimeSpan.FromSeconds(seconds)));
                }
            }

            Console.WriteLine($"Transfers, {workers} workers, {seconds} s per run, {rounds} rounds (order alternated); total after: {await bank.TotalAsync()} (expected {Bank.ExpectedTotal})");
            Console.WriteLine();
            Console.WriteLine("| variant | transfers/s per round | p50 ms | p99 ms | client CPU µs per transfer |");
            Console.WriteLine("|---|---|---|---|---|");
            foreach (var (name, _) in variants)
            {
                var runs = results[name];
                Console.WriteLine($"| {name} | {string.Join(" / ", runs.Select(r => r.Ops.ToString("0", System.Globalization.CultureInfo.InvariantCulture)))} | {runs.Average(r => r.P50):0.00} | {runs.Average(r => r.P99):0.00} | {runs.Average(r => r.CpuUs):0} |");
            }

            return await bank.TotalAsync() == Bank.ExpectedTotal ? 0 : 1;
        }
        finally
        {
            first.Dispose();
            second.Dispose();
        }
    }

    // Withdrawals from accounts 1-5, deposits to 6-10: every transfer locks in the same order, so workers never deadlock
    // (a deadlock across two servers is invisible to both and would only end with the transaction timeout).
    private static int From(Random random) => random.Next(1, (Bank.AccountsPerDatabase / 2) + 1);

    private static int To(Random random) => random.Next((Bank.AccountsPerDatabase / 2) + 1, Bank.AccountsPerDatabase + 1);

    /// <summary>The same two parameterized updates as the other variants, in one local transaction (raw Npgsql or RwSplit).</summary>
    private static async Task LocalTransferAsync(System.Data.Common.DbDataSource dataSource, int from, int to)
    {
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        foreach (var (amount, id) in new[] { (-1L, from), (1L, to) })
        {
            await using var command = connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = "UPDATE bank_accounts SET balance = balance + @amount WHERE id = @id";
            command.Parameters.Add(new NpgsqlParameter("amount", amount));
            command.Parameters.Add(new NpgsqlParameter("id", id));
            await command.ExecuteNonQueryAsync();
        }

        await transaction.CommitAsync();
    }

    private static async Task<(double Ops, double P50, double P99, double CpuUs)> MeasureAsync(Func<Random, Task> transfer, int workers, TimeSpan duration)
    {
        var latencies = new List<double>[workers];
        var deadline = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var started = Stopwatch.GetTimestamp();
        var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
        await Task.WhenAll(Enumerable.Range(0, workers).Select(w => Task.Run(async () =>
        {
            var random = new Random(w);
            var list = latencies[w] = new List<double>();
            while (Stopwatch.GetTimestamp() < deadline)
            {
                var t = Stopwatch.GetTimestamp();
                try
                {
                    await transfer(random);
                    list.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
                }
                catch (TransactionException)
                {
                    // a deadlock between two workers' transfers aborts one; it is not counted
                }
                catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.DeadlockDetected)
                {
                }
            }
        })));
        var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
        var cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpuBefore).TotalMicroseconds;
        var all = latencies.SelectMany(l => l).OrderBy(x => x).ToArray();
        return (all.Length / elapsed, all[all.Length / 2], all[(int)(all.Length * 0.99)], cpu / all.Length);
    }
}

using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading.Tasks;
using RwSplit.PgCluster;
using RwSplit.Transactions;

namespace RwSplit.TransferWorkload;

/// <summary>
/// Where the time of one distributed transfer goes, one transfer at a time: the mean time between consecutive fault
/// points of the commit protocol (the hook is the protocol's own instrumentation), for the TransactionScope path, the
/// asynchronous API and Npgsql's own TransactionScope two-phase commit (total only). The variants take turns transfer by
/// transfer, so that the machine's drift over a run (which reaches ±30% here) falls on all of them alike.
/// </summary>
public static class Phases
{
    private const string Tail = "end (close branches, scope)";

    public static async Task<int> RunAsync(int transfers)
    {
        await using var cluster = await LocalPgCluster.StartAsync(new LocalPgClusterOptions { BasePort = 25460, ReplicaCount = 0, StartSecondPrimary = true });
        var bank = new Bank(cluster.PrimaryConnectionString, cluster.SecondPrimaryConnectionString);
        await bank.ResetAsync();
        var (first, second) = bank.CreateDataSources("rwsplit-phases");
        try
        {
            var variants = new (string Name, Func<Task> Transfer)[]
            {
                ("TransactionScope", () => Bank.TransferAsync(first, second, 1, 6, 1)),
                ("async API", () => Bank.TransferWithRwSplitApiAsync(first, second, 1, 6, 1)),
                ("Npgsql TransactionScope (total only)", () => Bank.TransferWithNpgsqlAsync(bank.Database1, bank.Database2, 1, 6, 1)),
            };
            var sums = variants.Select(_ => new Dictionary<string, double>(StringComparer.Ordinal)).ToArray();
            var orders = variants.Select(_ => new List<string>()).ToArray();
            var totals = new double[variants.Length];
            var current = 0;
            long last = 0;
            void Add(string key, long now)
            {
                if (!sums[current].ContainsKey(key))
                    orders[current].Add(key);
                sums[current][key] = sums[current].GetValueOrDefault(key) + Stopwatch.GetElapsedTime(last, now).TotalMicroseconds;
                last = now;
            }

            FaultInjection.Hook = (point, _) => Add("→ " + point, Stopwatch.GetTimestamp());
            for (var i = 0; i < 200; i++)
            {
                foreach (var (_, transfer) in variants)
                    await transfer(); // warm-up
            }

            foreach (var sum in sums)
                sum.Clear();
            foreach (var order in orders)
                order.Clear();
            for (var i = 0; i < transfers; i++)
            {
                for (current = 0; current < variants.Length; current++)
                {
                    var start = last = Stopwatch.GetTimestamp();
                    await variants[current].Transfer();
                    var end = Stopwatch.GetTimestamp();
                    Add("→ " + Tail, end);
                    totals[current] += Stopwatch.GetElapsedTime(start, end).TotalMicroseconds;
                }
            }

            FaultInjection.Hook = null;
            for (var v = 0; v < variants.Length; v++)
            {
                Console.WriteLine($"{variants[v].Name}: {totals[v] / transfers:0} µs per transfer");
                foreach (var key in orders[v].Where(k => !k.EndsWith(Tail, StringComparison.Ordinal)).Append("→ " + Tail))
                    Console.WriteLine($"  {key,-40} {sums[v][key] / transfers,8:0} µs");
            }

            return 0;
        }
        finally
        {
            FaultInjection.Hook = null;
            first.Dispose();
            second.Dispose();
        }
    }
}

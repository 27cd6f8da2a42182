using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading.Tasks;
using RwSplit.PgCluster;
using RwSplit.Transactions;

namespace RwSplit.TransferWorkload;

/// <summary>
/// Where the time of one distributed transfer goes, one worker at a time: the mean time between consecutive fault
/// points of the commit protocol (the hook is the protocol's own instrumentation), for the TransactionScope path and the
/// asynchronous API.
/// </summary>
public static class Phases
{
    public static async Task<int> RunAsync(int transfers)
    {
        await using var cluster = await LocalPgCluster.StartAsync(new LocalPgClusterOptions { BasePort = 25460, ReplicaCount = 0, StartSecondPrimary = true });
        var bank = new Bank(cluster.PrimaryConnectionString, cluster.SecondPrimaryConnectionString);
        await bank.ResetAsync();
        var (first, second) = bank.CreateDataSources("rwsplit-phases");
        try
        {
            foreach (var (name, transfer) in new (string, Func<Task>)[]
            {
                ("TransactionScope", () => Bank.TransferAsync(first, second, 1, 6, 1)),
                ("async API", () => Bank.TransferWithRwSplitApiAsync(first, second, 1, 6, 1)),
                ("Npgsql TransactionScope (total only)", () => Bank.TransferWithNpgsqlAsync(bank.Database1, bank.Database2, 1, 6, 1)),
            })
            {
                var sums = new Dictionary<string, double>(StringComparer.Ordinal);
                var order = new List<string>();
                long last = 0;
                FaultInjection.Hook = (point, _) =>
                {
                    var now = Stopwatch.GetTimestamp();
                    var key = "→ " + point;
                    if (!sums.ContainsKey(key))
                        order.Add(key);
                    sums[key] = sums.GetValueOrDefault(key) + Stopwatch.GetElapsedTime(last, now).TotalMicroseconds;
                    last = now;
                };
                for (var i = 0; i < 200; i++)
                    await transfer(); // warm-up
                sums.Clear();
                order.Clear();
                var total = 0.0;
                for (var i = 0; i < transfers; i++)
                {
                    var start = last = Stopwatch.GetTimestamp();
                    await transfer();
                    var end = Stopwatch.GetTimestamp();
                    const string tail = "→ end (close branches, scope)";
                    if (!sums.ContainsKey(tail))
                        order.Add(tail);
                    sums[tail] = sums.GetValueOrDefault(tail) + Stopwatch.GetElapsedTime(last, end).TotalMicroseconds;
                    total += Stopwatch.GetElapsedTime(start, end).TotalMicroseconds;
                }

                FaultInjection.Hook = null;
                Console.WriteLine($"{name}: {total / transfers:0} µs per transfer");
                foreach (var key in order.Distinct())
                    Console.WriteLine($"  {key,-40} {sums[key] / transfers,8:0} µs");
            }

            return 0;
        }
        finally
        {
            first.Dispose();
            second.Dispose();
        }
    }
}

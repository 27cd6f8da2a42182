using System;
using System.Diagnostics;
using System.Threading.Tasks;
using RwSplit.PgCluster;
using RwSplit.Transactions;

namespace RwSplit.TransferWorkload;

/// <summary>
/// Runs the kill workload through RwSplit and through plain Npgsql, side by side, on two independent local PostgreSQL
/// servers, and prints one table: money lost and prepared transactions left behind.
/// </summary>
public static class Comparison
{
    public static async Task<int> RunAsync(int kills)
    {
        await using var cluster = await LocalPgCluster.StartAsync(new LocalPgClusterOptions { BasePort = 25460, ReplicaCount = 0, StartSecondPrimary = true });
        var bank = new Bank(cluster.PrimaryConnectionString, cluster.SecondPrimaryConnectionString);
        Console.WriteLine($"Kill workload: {kills} random SIGKILLs of a process running TransactionScope transfers across two PostgreSQL servers (ports {cluster.Primary.Port} and {cluster.SecondPrimary.Port}).");
        Console.WriteLine();
        var rwsplit = await RunModeAsync(bank, "rwsplit", kills);
        var npgsql = await RunModeAsync(bank, "npgsql", kills);
        Console.WriteLine();
        Console.WriteLine("| workload | kills | killed processes that had committed transfers | total after (expected " + Bank.ExpectedTotal + ") | money lost or created | prepared transactions left |");
        Console.WriteLine("|---|---|---|---|---|---|");
        Console.WriteLine(rwsplit);
        Console.WriteLine(npgsql);
        await Bank.RollbackAllPreparedAsync(bank.Database1);
        await Bank.RollbackAllPreparedAsync(bank.Database2);
        return 0;
    }

    private static async Task<string> RunModeAsync(Bank bank, string mode, int kills)
    {
        await bank.ResetAsync();
        var (first, second) = mode == "rwsplit" ? bank.CreateDataSources("rwsplit-transfer-recovery") : (null, null);
        var random = new Random(7);
        var started = Stopwatch.StartNew();
        var firstCommits = 0;
        try
        {
            for (var i = 0; i < kills; i++)
            {
                using var child = ChildProcess.Start(mode, bank.Database1, bank.Database2);
                if (await Task.WhenAny(child.FirstCommit, Task.Delay(TimeSpan.FromSeconds(20))) == child.FirstCommit)
                    firstCommits++;
                await Task.Delay(random.Next(0, 300));
                child.Kill();
                await child.WaitForExitAsync(TimeSpan.FromSeconds(10));
                if (mode == "rwsplit")
                    await first!.Recovery!.RecoverAsync(TimeSpan.Zero, default); // the child is dead: no live coordinator to wait for
            }
        }
        finally
        {
            first?.Dispose();
            second?.Dispose();
        }

        var total = await bank.TotalAsync();
        var prepared = await bank.PreparedAsync();
        Console.WriteLine($"{mode}: {kills} kills in {started.Elapsed.TotalSeconds:0} s, total {total}, {prepared.Count} prepared left");
        return $"| {(mode == "rwsplit" ? "RwSplit (TransactionScope, recovery after each kill)" : "plain Npgsql (TransactionScope, Enlist=true)")} | {kills} | {firstCommits} of {kills} | {total} | {total - Bank.ExpectedTotal:+0;-0;0} | {prepared.Count} |";
    }
}

using System;
using System.Diagnostics;
using System.Threading.Tasks;
using RwSplit.PgCluster;

namespace RwSplit.TransferWorkload;

/// <summary>How <see cref="Comparison.RunKillsAsync"/> kills the workload.</summary>
public sealed record KillRunOptions
{
    /// <summary>How many child processes are started and killed (SIGKILL), one after the other.</summary>
    public int Kills { get; init; } = 40;

    /// <summary>Concurrent transfer loops in each child (so each kill meets that many transactions in flight).</summary>
    public int Workers { get; init; } = 1;

    /// <summary>The kill comes at a random moment up to this long after the child's first commit.</summary>
    public TimeSpan MaxDelayAfterFirstCommit { get; init; } = TimeSpan.FromMilliseconds(300);

    /// <summary>
    /// Plain Npgsql only: after each kill, roll back the prepared transactions it left (there is no record of the
    /// decision, so an operator can only guess; rolling back is the usual guess). Otherwise they stay, holding row locks
    /// that block the next children's transfers until their scopes time out.
    /// </summary>
    public bool RollBackNpgsqlOrphansAfterEachKill { get; init; }

    /// <summary>Seed of the kill delays.</summary>
    public int Seed { get; init; } = 7;
}

/// <summary>What a kill run ended with.</summary>
/// <param name="Mode"><c>rwsplit</c> or <c>npgsql</c>.</param>
/// <param name="Kills">Children killed.</param>
/// <param name="KilledAfterCommit">Children that had committed at least one transfer when killed.</param>
/// <param name="Total">The total over both databases afterwards.</param>
/// <param name="PreparedLeft">Prepared transactions left in both databases afterwards.</param>
/// <param name="Recovered">RwSplit: prepared branches recovery resolved; Npgsql: orphaned prepared transactions rolled back by guess.</param>
/// <param name="Unresolved">RwSplit: branches recovery could not resolve (0 expected).</param>
/// <param name="Elapsed">Duration of the run.</param>
public sealed record KillRunResult(string Mode, int Kills, int KilledAfterCommit, long Total, int PreparedLeft, int Recovered, int Unresolved, TimeSpan Elapsed)
{
    /// <summary>Money lost (negative) or created (positive).</summary>
    public long Drift => Total - Bank.ExpectedTotal;
}

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
        var options = new KillRunOptions { Kills = kills };
        var rwsplit = await RunKillsAsync(bank, "rwsplit", options);
        var npgsql = await RunKillsAsync(bank, "npgsql", options);
        foreach (var r in new[] { rwsplit, npgsql })
            Console.WriteLine($"{r.Mode}: {r.Kills} kills in {r.Elapsed.TotalSeconds:0} s, total {r.Total}, {r.PreparedLeft} prepared left");
        Console.WriteLine();
        Console.WriteLine("| workload | kills | killed processes that had committed transfers | total after (expected " + Bank.ExpectedTotal + ") | money lost or created | prepared transactions left |");
        Console.WriteLine("|---|---|---|---|---|---|");
        foreach (var r in new[] { rwsplit, npgsql })
            Console.WriteLine($"| {(r.Mode == "rwsplit" ? "RwSplit (TransactionScope, recovery after each kill)" : "plain Npgsql (TransactionScope, Enlist=true)")} | {r.Kills} | {r.KilledAfterCommit} of {r.Kills} | {r.Total} | {r.Drift:+0;-0;0} | {r.PreparedLeft} |");
        await Bank.RollbackAllPreparedAsync(bank.Database1);
        await Bank.RollbackAllPreparedAsync(bank.Database2);
        return 0;
    }

    /// <summary>
    /// Resets the bank, then starts the transfer workload in a child process and kills it (SIGKILL) at a random moment
    /// after its first commit, <see cref="KillRunOptions.Kills"/> times. Through RwSplit, recovery runs after each kill
    /// from this process's data sources (the restarted service); through plain Npgsql nothing can.
    /// </summary>
    public static async Task<KillRunResult> RunKillsAsync(Bank bank, string mode, KillRunOptions options, Action<int>? onKill = null)
    {
        ArgumentNullException.ThrowIfNull(bank);
        ArgumentNullException.ThrowIfNull(options);
        await bank.ResetAsync();
        var (first, second) = mode == "rwsplit" ? bank.CreateDataSources("rwsplit-transfer-recovery") : (null, null);
        var random = new Random(options.Seed);
        var started = Stopwatch.StartNew();
        var firstCommits = 0;
        var recovered = 0;
        var unresolved = 0;
        try
        {
            for (var i = 0; i < options.Kills; i++)
            {
                using var child = ChildProcess.Start(mode, bank.Database1, bank.Database2, seconds: 30, workers: options.Workers); // ends by itself should this process die first
                if (await Task.WhenAny(child.FirstCommit, Task.Delay(TimeSpan.FromSeconds(20))) == child.FirstCommit)
                    firstCommits++;
                await Task.Delay(random.Next(0, (int)options.MaxDelayAfterFirstCommit.TotalMilliseconds + 1));
                child.Kill();
                await child.WaitForExitAsync(TimeSpan.FromSeconds(10));
                if (mode == "rwsplit")
                {
                    var result = await first!.Recovery!.RecoverAsync(TimeSpan.Zero, default); // the child is dead: no live coordinator to wait for
                    recovered += result.Committed + result.RolledBack;
                    unresolved += result.Unresolved.Count;
                }
                else if (options.RollBackNpgsqlOrphansAfterEachKill)
                {
                    recovered += await Bank.RollbackAllPreparedAsync(bank.Database1) + await Bank.RollbackAllPreparedAsync(bank.Database2);
                }

                onKill?.Invoke(i + 1);
            }
        }
        finally
        {
            first?.Dispose();
            second?.Dispose();
        }

        var total = await bank.TotalAsync();
        var prepared = await bank.PreparedAsync();
        return new KillRunResult(mode, options.Kills, firstCommits, total, prepared.Count, recovered, unresolved, started.Elapsed);
    }
}

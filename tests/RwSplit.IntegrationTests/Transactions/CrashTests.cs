using System;
using System.Diagnostics;
using System.Linq;
using System.Threading.Tasks;
using NUnit.Framework;
using RwSplit.Transactions;
using RwSplit.TransferWorkload;

namespace RwSplit.IntegrationTests.Transactions;

/// <summary>
/// The bank transfer workload in a child process, killed (SIGKILL) at each named fault point of the protocol and at
/// random moments; servers restarted with <c>pg_ctl stop -m immediate</c> while branches are prepared. After each crash,
/// recovery runs, and the total must be exact with no RwSplit prepared transaction left.
/// </summary>
[TestFixture(BankTopology.TwoServers, 200)]
[TestFixture(BankTopology.TwoDatabasesOneServer, 60)]
[NonParallelizable]
public sealed class CrashTests
{
    private readonly BankTopology _topology;
    private readonly int _randomKills;
    private Bank _bank = null!;
    private RwSplitDataSource _first = null!;
    private RwSplitDataSource _second = null!;

    public CrashTests(BankTopology topology, int randomKills)
    {
        _topology = topology;
        _randomKills = randomKills;
    }

    [OneTimeSetUp]
    public async Task CreateBankAsync()
    {
        _bank = await TransactionTestSupport.BankAsync(_topology);
        await _bank.ResetAsync();
        // This process plays the restarted service: its data sources over both databases are registered for recovery.
        (_first, _second) = _bank.CreateDataSources("rwsplit-crash-recovery");
    }

    [OneTimeTearDown]
    public void DisposeDataSources()
    {
        _first?.Dispose();
        _second?.Dispose();
    }

    private async Task RecoverAndCheckAsync(string after)
    {
        var result = await _first.Recovery!.RecoverAsync(TimeSpan.Zero, default); // the child is dead: no live coordinator
        Assert.That(result.Unresolved, Is.Empty, () => $"{after}: unresolved: {string.Join(" | ", result.Unresolved.Select(u => u.Reason))}");
        Assert.That(await _bank.TotalAsync(), Is.EqualTo(Bank.ExpectedTotal), $"{after}: no money lost or created");
        Assert.That(await _bank.PreparedAsync(), Is.Empty, $"{after}: no prepared transaction left");
    }

    [TestCaseSource(typeof(FaultInjection), nameof(FaultInjection.All))]
    [CancelAfter(120_000)]
    public async Task Killed_at_each_fault_point(string point)
    {
        for (var run = 0; run < 2; run++) // twice: the second run also meets what the first left behind
        {
            using var child = ChildProcess.Start("rwsplit", _bank.Database1, _bank.Database2, fault: point);
            Assert.That(await child.WaitForExitAsync(TimeSpan.FromSeconds(60)), Is.True, $"the child never reached {point}: {child.StandardError}");
            await RecoverAndCheckAsync($"killed at {point}");
        }
    }

    [Test]
    [CancelAfter(1_200_000)]
    public async Task Killed_at_random_moments()
    {
        var random = new Random(20261126);
        var stopwatch = Stopwatch.StartNew();
        var committedBeforeKill = 0;
        for (var i = 0; i < _randomKills; i++)
        {
            using var child = ChildProcess.Start("rwsplit", _bank.Database1, _bank.Database2);
            if (await Task.WhenAny(child.FirstCommit, Task.Delay(TimeSpan.FromSeconds(30))) == child.FirstCommit)
                committedBeforeKill++;
            await Task.Delay(random.Next(0, 250));
            child.Kill();
            await child.WaitForExitAsync(TimeSpan.FromSeconds(10));
            await RecoverAndCheckAsync($"random kill {i + 1}");
        }

        TestContext.Out.WriteLine($"{_randomKills} random kills in {stopwatch.Elapsed.TotalSeconds:0} s; {committedBeforeKill} children had committed transfers before being killed");
        Assert.That(committedBeforeKill, Is.GreaterThan(_randomKills / 2), "the children were killed mid-workload, not before it started");
    }

    [TestCase(FaultInjection.AfterPrepare)]
    [TestCase(FaultInjection.BeforeDecision)]
    [TestCase(FaultInjection.AfterDecisionInsert)]
    [TestCase(FaultInjection.AfterDecisionCommit)]
    [CancelAfter(120_000)]
    public async Task The_prepared_server_restarted_after_a_crash(string point)
    {
        if (_topology != BankTopology.TwoServers)
            Assert.Ignore("Restarts target the second primary, which holds the prepared branch only in the two-server topology.");

        // Forward transfers: database 1 holds the decision, database 2 (the second primary) the prepared branch.
        using var child = ChildProcess.Start("rwsplit", _bank.Database1, _bank.Database2, fault: point, forwardOnly: true);
        Assert.That(await child.WaitForExitAsync(TimeSpan.FromSeconds(60)), Is.True, child.StandardError);
        var server = ClusterSetup.Cluster.SecondPrimary;
        await server.StopAsync(immediate: true);
        await server.StartAsync();
        Npgsql.NpgsqlConnection.ClearAllPools(); // the test's own plain-Npgsql checks (RwSplit's recovery copes with dead pooled connections itself)
        await RecoverAndCheckAsync($"killed at {point}, then the second primary restarted");
    }
}

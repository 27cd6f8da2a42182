using System;
using System.Linq;
using System.Threading.Tasks;
using NUnit.Framework;
using RwSplit.Transactions;

namespace RwSplit.EntityFrameworkCoreTests;

/// <summary>
/// Two EF contexts on two PostgreSQL servers in one TransactionScope, in a child process killed (SIGKILL) at each
/// fault point of the commit protocol and at random moments. This process plays the restarted service: its recovery
/// resolves what the dead coordinator left, and then every order is in both databases with all its lines, or in neither.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class CrashTests
{
    private const string Database = "ef_crash";
    private RwSplitRecovery _recovery = null!;
    private RwSplitDataSource _first = null!;
    private RwSplitDataSource _second = null!;
    private string _firstString = "";
    private string _secondString = "";

    [OneTimeSetUp]
    public async Task CreateAsync()
    {
        _ = EfCluster.Cluster;
        _firstString = EfCluster.For(EfCluster.Cluster.Primary, Database, "ef-crash");
        _secondString = EfCluster.For(EfCluster.Cluster.SecondPrimary, Database, "ef-crash");
        await DropAsync();
        _recovery = new RwSplitRecovery();
        _first = OrderWorkload.CreateDataSource(_firstString, "crash-recovery-1", _recovery);
        _second = OrderWorkload.CreateDataSource(_secondString, "crash-recovery-2", _recovery);
        foreach (var dataSource in new[] { _first, _second })
        {
            await using var context = OrderWorkload.NewContext(dataSource);
            await context.Database.EnsureCreatedAsync();
            context.Customers.Add(new Customer { Name = "buyer", Mood = Mood.Happy });
            await context.SaveChangesAsync();
        }
    }

    [OneTimeTearDown]
    public async Task DisposeAsync()
    {
        await _first.DisposeAsync();
        await _second.DisposeAsync();
        _recovery.Dispose();
        await DropAsync();
    }

    private static async Task DropAsync()
    {
        await EfCluster.ExecuteAsync(EfCluster.Cluster.Primary, "postgres", $"DROP DATABASE IF EXISTS \"{Database}\" WITH (FORCE)");
        await EfCluster.ExecuteAsync(EfCluster.Cluster.SecondPrimary, "postgres", $"DROP DATABASE IF EXISTS \"{Database}\" WITH (FORCE)");
    }

    private static async Task<string[]> OrdersAsync(RwSplit.PgCluster.PgServer server)
    {
        var text = await EfCluster.ScalarAsync<string>(server, Database,
            "SELECT coalesce(string_agg(o.reference || ':' || (SELECT count(*) FROM order_lines l WHERE l.orderid = o.id), ',' ORDER BY o.reference), '') FROM orders o");
        return string.IsNullOrEmpty(text) ? [] : text.Split(',');
    }

    private async Task RecoverAndCheckAsync(string after)
    {
        var pass = await _recovery.RecoverAsync(TimeSpan.Zero, default); // the child is dead: no live coordinator to wait for
        Assert.That(pass.Unresolved, Is.Empty, () => $"{after}: unresolved: {string.Join(" | ", pass.Unresolved.Select(u => u.Reason))}");
        var first = await OrdersAsync(EfCluster.Cluster.Primary);
        var second = await OrdersAsync(EfCluster.Cluster.SecondPrimary);
        Assert.That(first, Is.EqualTo(second), $"{after}: every order in both databases or in neither");
        Assert.That(first, Has.All.EndsWith($":{OrderWorkload.LinesPerOrder}"), $"{after}: each with all its lines");
        foreach (var server in new[] { EfCluster.Cluster.Primary, EfCluster.Cluster.SecondPrimary })
            Assert.That(await EfCluster.ScalarAsync<long>(server, Database, "SELECT count(*) FROM pg_prepared_xacts"), Is.Zero, $"{after}: nothing left prepared on {server}");
    }

    [TestCaseSource(typeof(FaultInjection), nameof(FaultInjection.All))]
    [CancelAfter(120_000)]
    public async Task Killed_at_each_fault_point(string point)
    {
        var before = (await OrdersAsync(EfCluster.Cluster.Primary)).Length;
        using var child = OrderWorkload.Start(_firstString, _secondString, point);
        Assert.That(await child.WaitForExitAsync(TimeSpan.FromSeconds(60)), Is.True, $"the child never reached {point}: {child.StandardError}");
        Assert.That(child.ExitCode, Is.EqualTo(137), $"the child killed itself at {point} (SIGKILL), not failed: {child.StandardError}");
        await RecoverAndCheckAsync($"killed at {point}");

        // The first order's commit passes every point: once its decision committed, recovery commits both sides.
        var decided = point is FaultInjection.DecisionCommitReplyLost or FaultInjection.AfterDecisionCommit or FaultInjection.BetweenCommitPrepared or FaultInjection.AfterCommitPrepared;
        Assert.That((await OrdersAsync(EfCluster.Cluster.Primary)).Length, Is.EqualTo(before + (decided ? 1 : 0)), decided ? "committed: the decision was durable" : "rolled back: no decision");
    }

    [Test]
    [CancelAfter(300_000)]
    public async Task Killed_at_random_moments()
    {
        var random = new Random(20261203);
        var before = (await OrdersAsync(EfCluster.Cluster.Primary)).Length;
        for (var i = 0; i < 8; i++)
        {
            using var child = OrderWorkload.Start(_firstString, _secondString, fault: null);
            Assert.That(await Task.WhenAny(child.FirstCommit, Task.Delay(TimeSpan.FromSeconds(30))), Is.SameAs(child.FirstCommit), $"the child never committed: {child.StandardError}");
            await Task.Delay(random.Next(0, 400));
            child.Kill();
            Assert.That(child.StandardError, Does.Not.Contain("Unhandled exception"), "the child was killed, it did not fail");
            await RecoverAndCheckAsync($"kill {i}");
        }

        Assert.That((await OrdersAsync(EfCluster.Cluster.Primary)).Length, Is.GreaterThan(before + 8), "the children committed orders before they were killed");
    }
}

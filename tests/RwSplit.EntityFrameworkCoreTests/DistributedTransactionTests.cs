using System;
using System.Linq;
using System.Threading.Tasks;
using System.Transactions;
using Microsoft.EntityFrameworkCore;
using NUnit.Framework;
using RwSplit.PostgreSql;
using RwSplit.Transactions;

namespace RwSplit.EntityFrameworkCoreTests;

/// <summary>
/// Two contexts on two PostgreSQL servers in one <see cref="TransactionScope"/>: RwSplit's coordinator commits both
/// atomically (two-phase commit with a durable decision), although each <c>SaveChanges</c> needs several batches
/// (an order with lines whose keys come from the order's; one statement per batch here).
/// </summary>
[TestFixture]
public sealed class DistributedTransactionTests
{
    private const string Database = "ef_dist";
    private RwSplitRecovery _recovery = null!;
    private RwSplitDataSource _first = null!;
    private RwSplitDataSource _second = null!;

    [OneTimeSetUp]
    public async Task CreateAsync()
    {
        _ = EfCluster.Cluster;
        await EfCluster.DropDatabaseAsync(Database);
        await EfCluster.ExecuteAsync(EfCluster.Cluster.SecondPrimary, "postgres", $"DROP DATABASE IF EXISTS \"{Database}\" WITH (FORCE)");
        _recovery = new RwSplitRecovery();
        _first = OrderWorkload.CreateDataSource(EfCluster.For(EfCluster.Cluster.Primary, Database), "ef-dist-1", _recovery);
        _second = OrderWorkload.CreateDataSource(EfCluster.For(EfCluster.Cluster.SecondPrimary, Database), "ef-dist-2", _recovery);
        await using (var a = NewContext(_first))
            await a.Database.EnsureCreatedAsync();
        await using (var b = NewContext(_second))
            await b.Database.EnsureCreatedAsync();
    }

    [OneTimeTearDown]
    public async Task DisposeAsync()
    {
        FaultInjection.Hook = null;
        await _first.DisposeAsync();
        await _second.DisposeAsync();
        _recovery.Dispose();
        await EfCluster.DropDatabaseAsync(Database);
        await EfCluster.ExecuteAsync(EfCluster.Cluster.SecondPrimary, "postgres", $"DROP DATABASE IF EXISTS \"{Database}\" WITH (FORCE)");
    }

    [SetUp]
    public async Task EmptyAsync()
    {
        foreach (var server in new[] { EfCluster.Cluster.Primary, EfCluster.Cluster.SecondPrimary })
            await EfCluster.ExecuteAsync(server, Database, "TRUNCATE order_lines, orders, customers RESTART IDENTITY CASCADE");
    }

    [TearDown]
    public async Task NothingLeftPreparedAsync()
    {
        FaultInjection.Hook = null;
        await _recovery.RecoverAsync(TimeSpan.Zero, default);
        foreach (var server in new[] { EfCluster.Cluster.Primary, EfCluster.Cluster.SecondPrimary })
            Assert.That(await EfCluster.ScalarAsync<long>(server, Database, "SELECT count(*) FROM pg_prepared_xacts"), Is.Zero, $"no prepared transaction left on {server}");
    }

    private static ShopContext NewContext(RwSplitDataSource dataSource) => OrderWorkload.NewContext(dataSource);

    private static Customer NewCustomer(string name, int lines)
    {
        var customer = new Customer { Name = name, Mood = Mood.Happy };
        var order = new Order { Reference = name + "-order" };
        for (var i = 0; i < lines; i++)
            order.Lines.Add(new OrderLine { Product = $"item {i}", Quantity = i + 1 });
        customer.Orders.Add(order);
        return customer;
    }

    /// <summary>Both contexts save (several batches each), inside one scope.</summary>
    private async Task SaveBothAsync(bool complete)
    {
        using var scope = new TransactionScope(TransactionScopeOption.Required, new TransactionOptions { IsolationLevel = IsolationLevel.ReadCommitted }, TransactionScopeAsyncFlowOption.Enabled);
        await using (var a = NewContext(_first))
        {
            a.Add(NewCustomer("north", 4));
            await a.SaveChangesAsync();
        }

        await using (var b = NewContext(_second))
        {
            b.Add(NewCustomer("south", 3));
            b.Customers.Add(new Customer { Name = "south-2", Mood = Mood.Sad });
            await b.SaveChangesAsync();
        }

        if (complete)
            scope.Complete();
    }

    private static async Task<(long First, long Second)> RowsAsync()
        => (await EfCluster.ScalarAsync<long>(EfCluster.Cluster.Primary, Database, "SELECT (SELECT count(*) FROM customers) + (SELECT count(*) FROM orders) + (SELECT count(*) FROM order_lines)"),
            await EfCluster.ScalarAsync<long>(EfCluster.Cluster.SecondPrimary, Database, "SELECT (SELECT count(*) FROM customers) + (SELECT count(*) FROM orders) + (SELECT count(*) FROM order_lines)"));

    [Test]
    public async Task Two_contexts_on_two_servers_commit_together()
    {
        await SaveBothAsync(complete: true);
        Assert.That(await RowsAsync(), Is.EqualTo((1L + 1 + 4, 2L + 1 + 3)));
        await using var read = NewContext(_second);
        Assert.That(await read.Lines.SumAsync(l => l.Quantity), Is.EqualTo(1 + 2 + 3));
    }

    [Test]
    public async Task A_scope_that_does_not_complete_leaves_neither_database_changed()
    {
        await SaveBothAsync(complete: false);
        Assert.That(await RowsAsync(), Is.EqualTo((0L, 0L)));
    }

    [Test]
    public async Task A_failure_between_prepare_and_decision_rolls_both_back()
    {
        FaultInjection.Hook = (point, _) =>
        {
            if (point == FaultInjection.AfterPrepare)
                throw new InvalidOperationException("injected between prepare and decision");
        };
        Assert.ThrowsAsync<TransactionAbortedException>(() => SaveBothAsync(complete: true));
        FaultInjection.Hook = null;
        Assert.That(await RowsAsync(), Is.EqualTo((0L, 0L)));
    }

    [Test]
    public async Task A_coordinator_that_stops_after_the_decision_is_finished_by_recovery()
    {
        var explicitPass = new System.Threading.AsyncLocal<bool>();
        var injecting = true;
        FaultInjection.Hook = (point, _) =>
        {
            if (injecting && point == FaultInjection.AfterDecisionCommit)
                throw new InvalidOperationException("injected after the decision");
            if (point == FaultInjection.RecoveryBeforeResolve && !explicitPass.Value)
                throw new InvalidOperationException("only this test's own pass may resolve"); // a background pass would find the decision too
        };
        await SaveBothAsync(complete: true); // the decision is durable: the commit succeeded
        injecting = false;
        long prepared = 0;
        foreach (var server in new[] { EfCluster.Cluster.Primary, EfCluster.Cluster.SecondPrimary })
            prepared += await EfCluster.ScalarAsync<long>(server, Database, "SELECT count(*) FROM pg_prepared_xacts");
        Assert.That(prepared, Is.GreaterThan(0), "the coordinator stopped before finishing: branches wait, prepared");
        explicitPass.Value = true;
        var pass = await _recovery.RecoverAsync(TimeSpan.FromHours(1), default); // a long grace period: only the decision can decide
        FaultInjection.Hook = null;
        Assert.That(pass.Committed, Is.EqualTo(prepared), "recovery committed every branch the coordinator left, from its decision");
        Assert.That(await RowsAsync(), Is.EqualTo((1L + 1 + 4, 2L + 1 + 3)), "all of both");
    }
}

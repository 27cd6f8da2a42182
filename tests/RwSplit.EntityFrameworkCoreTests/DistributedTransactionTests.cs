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
        RwSplitDataSource Create(RwSplit.PgCluster.PgServer server, string name) => RwSplitDataSource.Create(o =>
        {
            o.UseNpgsql(b => b.MapEnum<Mood>("mood"));
            o.Primary = EfCluster.For(server, Database);
            o.Name = name;
            o.HealthMonitoring = false;
            o.Recovery = _recovery;
            o.RecoveryGracePeriod = TimeSpan.FromMinutes(1);
        });
        _first = Create(EfCluster.Cluster.Primary, "ef-dist-1");
        _second = Create(EfCluster.Cluster.SecondPrimary, "ef-dist-2");
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

    private static ShopContext NewContext(RwSplitDataSource dataSource) => new(EfCluster.ShopOptions(dataSource, o => o.MaxBatchSize(1)));

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
        FaultInjection.Hook = (point, _) =>
        {
            if (point == FaultInjection.AfterDecisionCommit)
                throw new InvalidOperationException("injected after the decision");
        };
        await SaveBothAsync(complete: true); // the decision is durable: the commit succeeded
        FaultInjection.Hook = null;
        var pass = await _recovery.RecoverAsync(TimeSpan.FromHours(1), default);
        Assert.That(pass.Committed, Is.LessThanOrEqualTo(1), "at most the branch the coordinator did not finish");
        Assert.That(await RowsAsync(), Is.EqualTo((1L + 1 + 4, 2L + 1 + 3)), "all of both");
    }
}

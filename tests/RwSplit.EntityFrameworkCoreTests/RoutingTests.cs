using System;
using System.Linq;
using System.Threading.Tasks;
using Microsoft.EntityFrameworkCore;
using NUnit.Framework;
using RwSplit.EntityFrameworkCore;

namespace RwSplit.EntityFrameworkCoreTests;

/// <summary>
/// Where EF's queries and writes run, judged by the servers: with WAL replay paused on both replicas, a query that does
/// not see a write made on the primary ran on a replica, one that sees it ran on the primary; and a standby refuses
/// every write, so a write that succeeds ran on the primary.
/// </summary>
[TestFixture]
public sealed class RoutingTests
{
    private const string Database = "ef_shop";
    private RwSplitDataSource _dataSource = null!;

    [OneTimeSetUp]
    public async Task CreateAsync()
    {
        _ = EfCluster.Cluster;
        await EfCluster.DropDatabaseAsync(Database);
        _dataSource = EfCluster.CreateDataSource(Database);
        await using (var context = NewContext())
            Assert.That(await context.Database.EnsureCreatedAsync(), Is.True, "EnsureCreated made the missing database on the primary, then its tables");
        await EfCluster.Cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(30));
        await EfCluster.WaitForHealthyAsync(_dataSource);
    }

    [OneTimeTearDown]
    public async Task DisposeAsync()
    {
        await _dataSource.DisposeAsync();
        await EfCluster.DropDatabaseAsync(Database);
    }

    [SetUp]
    public async Task SeedAsync()
    {
        await EfCluster.ExecuteAsync(EfCluster.Cluster.Primary, Database, "TRUNCATE order_lines, orders, customers RESTART IDENTITY CASCADE");
        await using (var context = NewContext())
        {
            var ann = new Customer { Name = "Ann", Mood = Mood.Happy };
            ann.Orders.Add(new Order { Reference = "A-1", Lines = { new OrderLine { Product = "tea", Quantity = 2 }, new OrderLine { Product = "cake", Quantity = 1 } } });
            var bob = new Customer { Name = "Bob", Mood = Mood.Sad };
            bob.Orders.Add(new Order { Reference = "B-1", Lines = { new OrderLine { Product = "coffee", Quantity = 3 } } });
            context.AddRange(ann, bob);
            await context.SaveChangesAsync();
        }

        await EfCluster.Cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(30));
    }

    [TearDown]
    public Task ResumeAsync() => EfCluster.ResumeReplayAsync();

    private ShopContext NewContext() => new(EfCluster.ShopOptions(_dataSource));

    /// <summary>Pauses replay, then renames every customer on the primary: a query that sees the old names ran on a replica.</summary>
    private static async Task RenameBehindTheReplicasAsync()
    {
        await EfCluster.PauseReplayAsync();
        await EfCluster.ExecuteAsync(EfCluster.Cluster.Primary, Database, "UPDATE customers SET name = name || ' (renamed)'");
    }

    [Test]
    public async Task Tracked_untracked_projected_included_and_split_queries_run_on_replicas()
    {
        await RenameBehindTheReplicasAsync();
        await using var context = NewContext();

        Assert.That((await context.Customers.OrderBy(c => c.Id).ToListAsync()).Select(c => c.Name), Is.EqualTo(new[] { "Ann", "Bob" }), "tracked");
        Assert.That(await context.Customers.AsNoTracking().OrderBy(c => c.Id).Select(c => c.Name).ToListAsync(), Is.EqualTo(new[] { "Ann", "Bob" }), "AsNoTracking");
        var projected = await context.Customers.OrderBy(c => c.Id).Select(c => new { c.Name, Lines = c.Orders.SelectMany(o => o.Lines).Sum(l => l.Quantity) }).ToListAsync();
        Assert.That(projected.Select(p => $"{p.Name}:{p.Lines}"), Is.EqualTo(new[] { "Ann:3", "Bob:3" }), "projection");
        var included = await context.Customers.AsNoTracking().Include(c => c.Orders).ThenInclude(o => o.Lines).OrderBy(c => c.Id).ToListAsync();
        Assert.That(included.Select(c => $"{c.Name}:{c.Orders.Single().Lines.Count}"), Is.EqualTo(new[] { "Ann:2", "Bob:1" }), "Include");
        var split = await context.Customers.AsNoTracking().Include(c => c.Orders).ThenInclude(o => o.Lines).AsSplitQuery().OrderBy(c => c.Id).ToListAsync();
        Assert.That(split.Select(c => $"{c.Name}:{c.Orders.Single().Lines.Count}"), Is.EqualTo(new[] { "Ann:2", "Bob:1" }), "split query");
        Assert.That(await context.Customers.CountAsync(c => c.Name.EndsWith("(renamed)")), Is.Zero, "aggregate");

        Assert.That(await context.Customers.AsPrimary().OrderBy(c => c.Id).Select(c => c.Name).ToListAsync(), Is.EqualTo(new[] { "Ann (renamed)", "Bob (renamed)" }), "AsPrimary() reads the primary");
    }

    [Test]
    public async Task SaveChanges_ExecuteUpdate_ExecuteDelete_and_HiLo_keys_run_on_the_primary()
    {
        await EfCluster.PauseReplayAsync();
        await using var context = NewContext();

        // A hot standby refuses each of these ("cannot execute ... in a read-only transaction"): they ran on the primary.
        var carl = new Customer { Name = "Carl", Mood = Mood.Curious };
        carl.Orders.Add(new Order { Reference = "C-1", Lines = { new OrderLine { Product = "scone", Quantity = 4 } } }); // its key: nextval of the HiLo sequence
        context.Add(carl);
        await context.SaveChangesAsync();
        Assert.That(carl.Orders[0].Lines[0].Id, Is.GreaterThan(0), "the HiLo block was taken from the primary's sequence");
        Assert.That(await context.Lines.Where(l => l.Product == "tea").ExecuteUpdateAsync(s => s.SetProperty(l => l.Quantity, 20)), Is.EqualTo(1));
        Assert.That(await context.Lines.Where(l => l.Product == "cake").ExecuteDeleteAsync(), Is.EqualTo(1));

        Assert.That(await EfCluster.ScalarAsync<long>(EfCluster.Cluster.Primary, Database, "SELECT count(*) FROM customers WHERE name = 'Carl'"), Is.EqualTo(1L));
        Assert.That(await EfCluster.ScalarAsync<int>(EfCluster.Cluster.Primary, Database, "SELECT quantity FROM order_lines WHERE product = 'tea'"), Is.EqualTo(20));
        foreach (var replica in EfCluster.Replicas)
            Assert.That(await EfCluster.ScalarAsync<long>(replica, Database, "SELECT count(*) FROM order_lines WHERE product = 'cake'"), Is.EqualTo(1L), "replay is paused: the replicas still have the deleted line");
    }

    [Test]
    public async Task A_query_after_SaveChanges_on_the_same_context_sees_the_write_and_another_context_reads_a_replica()
    {
        await EfCluster.PauseReplayAsync();
        await using var writer = NewContext();
        writer.Orders.Add(new Order { CustomerId = 1, Reference = "A-2" });
        await writer.SaveChangesAsync();

        Assert.That(await writer.Orders.AsNoTracking().AnyAsync(o => o.Reference == "A-2"), Is.True, "read-your-writes: the replicas lack it, so the query ran on the primary");
        Assert.That(await writer.Customers.Include(c => c.Orders).Where(c => c.Id == 1).Select(c => c.Orders.Count).SingleAsync(), Is.EqualTo(2), "so does the next one");

        await using var other = NewContext();
        Assert.That(await other.Orders.AnyAsync(o => o.Reference == "A-2"), Is.False, "a context that did not write reads a replica, which has not replayed it");
    }

    [Test]
    public async Task A_transaction_of_the_context_runs_on_the_primary_and_sees_its_own_uncommitted_rows()
    {
        await EfCluster.PauseReplayAsync();
        await using var context = NewContext();
        await using (var transaction = await context.Database.BeginTransactionAsync())
        {
            context.Orders.Add(new Order { CustomerId = 1, Reference = "T-1" });
            await context.SaveChangesAsync();
            Assert.That(await context.Orders.AnyAsync(o => o.Reference == "T-1"), Is.True, "inside the transaction: the primary, its own uncommitted row");
            await transaction.CommitAsync();
        }

        Assert.That(await context.Orders.AnyAsync(o => o.Reference == "T-1"), Is.True, "after the commit: read-your-writes");
        await using var other = NewContext();
        Assert.That(await other.Orders.AnyAsync(o => o.Reference == "T-1"), Is.False, "another context reads a paused replica");
    }

    [Test]
    public async Task Raw_SQL_reads_run_on_replicas_and_raw_SQL_writes_on_the_primary()
    {
        await RenameBehindTheReplicasAsync();
        await using var context = NewContext();
        Assert.That(await context.Customers.FromSqlRaw("SELECT * FROM customers").OrderBy(c => c.Id).Select(c => c.Name).FirstAsync(), Is.EqualTo("Ann"), "FromSqlRaw: a replica");
        Assert.That(await context.Database.SqlQueryRaw<string>("SELECT name AS \"Value\" FROM customers ORDER BY id").FirstAsync(), Is.EqualTo("Ann"), "SqlQueryRaw: a replica");
        Assert.That(await context.Database.ExecuteSqlRawAsync("UPDATE customers SET name = 'Ann again' WHERE id = 1"), Is.EqualTo(1), "ExecuteSqlRaw: the primary (a standby refuses it)");
        Assert.That(await context.Customers.Where(c => c.Id == 1).Select(c => c.Name).SingleAsync(), Is.EqualTo("Ann again"), "and the context reads its write");
    }

    [Test]
    public async Task WithMaxStaleness_reads_a_replica_within_the_bound_even_after_a_write()
    {
        await EfCluster.PauseReplayAsync();
        await using var context = NewContext();
        context.Orders.Add(new Order { CustomerId = 2, Reference = "B-2" });
        await context.SaveChangesAsync();

        Assert.That(await context.Orders.WithMaxStaleness(TimeSpan.FromHours(1)).AnyAsync(o => o.Reference == "B-2"), Is.False, "a replica an hour behind at most was good enough: it has not replayed the write");
        Assert.That(await context.Orders.AnyAsync(o => o.Reference == "B-2"), Is.True, "without the bound, read-your-writes");
    }

    [Test]
    public async Task A_PostgreSQL_enum_mapped_with_MapEnum_is_written_on_the_primary_and_read_on_a_replica()
    {
        await using (var writer = NewContext())
        {
            writer.Customers.Add(new Customer { Name = "Dora", Mood = Mood.Curious });
            await writer.SaveChangesAsync();
        }

        await EfCluster.Cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(30));
        await using var reader = NewContext();
        await reader.Database.OpenConnectionAsync();
        try
        {
            Assert.That(await reader.Customers.Where(c => c.Mood == Mood.Curious).Select(c => c.Name).SingleAsync(), Is.EqualTo("Dora"), "the enum as a parameter and as a column, on a replica");
            var connection = (RwSplitConnection)reader.Database.GetDbConnection();
            Assert.That(connection.CurrentReplicaConnection, Is.Not.Null, "it ran on a replica");
            Assert.That(connection.CurrentPrimaryConnection, Is.Null, "and nothing on the primary");
            Assert.That((await reader.Customers.OrderBy(c => c.Id).ToListAsync()).Select(c => c.Mood), Is.EqualTo(new[] { Mood.Happy, Mood.Sad, Mood.Curious }));
        }
        finally
        {
            await reader.Database.CloseConnectionAsync();
        }

        Assert.That(await EfCluster.ScalarAsync<string>(EfCluster.Cluster.Primary, Database, "SELECT mood::text FROM customers WHERE name = 'Dora'"), Is.EqualTo("curious"), "Npgsql's default name translator");
    }

    [Test]
    public async Task The_context_connection_string_shows_no_password_and_lets_EF_see_the_ambient_transaction()
    {
        await using var context = NewContext();
        var connectionString = context.Database.GetDbConnection().ConnectionString;
        Assert.That(context.Database.GetConnectionString(), Is.EqualTo(connectionString), "what EF reads");
        Assert.That(connectionString, Does.Not.Contain("Password").IgnoreCase);
        Assert.That(connectionString, Does.Not.Contain("Enlist").IgnoreCase, "efcore.pg ignores Transaction.Current when the string says Enlist=false");
    }
}

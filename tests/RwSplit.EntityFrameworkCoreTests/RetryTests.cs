using System;
using System.Data.Common;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using NUnit.Framework;
using RwSplit.EntityFrameworkCore;
using RwSplit.Routing;

namespace RwSplit.EntityFrameworkCoreTests;

/// <summary>
/// <c>EnableRetryOnFailure()</c> with RwSplit's own errors: Npgsql's strategy recognises only <c>NpgsqlException</c>;
/// RwSplit's transient errors are retried with its limits, its permanent ones are not. Stops the primary: runs last.
/// </summary>
[TestFixture]
[Order(100)]
[NonParallelizable]
public sealed class RetryTests
{
    private const string Database = "ef_retry";
    private RwSplitDataSource _dataSource = null!;

    [OneTimeSetUp]
    public async Task CreateAsync()
    {
        _ = EfCluster.Cluster;
        await EfCluster.DropDatabaseAsync(Database);
        _dataSource = EfCluster.CreateDataSource(Database, o => o.HealthMonitoring = false);
        await using var context = new ShopContext(EfCluster.ShopOptions(_dataSource));
        await context.Database.EnsureCreatedAsync();
    }

    [OneTimeTearDown]
    public async Task DisposeAsync()
    {
        await _dataSource.DisposeAsync();
        await EfCluster.DropDatabaseAsync(Database);
    }

    private sealed class FailureCounter : DbCommandInterceptor
    {
        public int Failures;

        public override void CommandFailed(DbCommand command, CommandErrorEventData eventData) => Interlocked.Increment(ref Failures);

        public override Task CommandFailedAsync(DbCommand command, CommandErrorEventData eventData, CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref Failures);
            return Task.CompletedTask;
        }
    }

    private ShopContext NewContext(FailureCounter counter)
        => new(new DbContextOptionsBuilder<ShopContext>()
            .UseNpgsql(o => o.MapEnum<Mood>("mood").EnableRetryOnFailure(maxRetryCount: 6, maxRetryDelay: TimeSpan.FromSeconds(1), errorCodesToAdd: null))
            .UseRwSplit(_dataSource)
            .AddInterceptors(counter)
            .Options);

    [Test]
    public async Task A_primary_that_refuses_connections_for_a_while_is_retried_until_it_is_back()
    {
        var primary = EfCluster.Cluster.Primary;
        await primary.StopAsync();
        var restart = Task.Run(async () =>
        {
            await Task.Delay(TimeSpan.FromSeconds(2));
            await primary.StartAsync();
        });
        try
        {
            var counter = new FailureCounter();
            await using var context = NewContext(counter);
            context.Customers.Add(new Customer { Name = "saved once the primary is back", Mood = Mood.Happy });
            var watch = Stopwatch.StartNew();
            await context.SaveChangesAsync();
            Assert.That(watch.Elapsed, Is.GreaterThan(TimeSpan.FromSeconds(1)), "it waited for the primary");
            Assert.That(counter.Failures, Is.GreaterThanOrEqualTo(1), "the first attempts failed: RwSplitException (EndpointUnreachable) with Npgsql's transient error inside");
            Assert.That(await EfCluster.ScalarAsync<long>(primary, Database, "SELECT count(*) FROM customers WHERE name = 'saved once the primary is back'"), Is.EqualTo(1L), "saved exactly once");
        }
        finally
        {
            await restart;
            await EfCluster.Cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(60));
        }
    }

    [Test]
    public async Task A_permanent_RwSplit_error_is_not_retried()
    {
        var counter = new FailureCounter();
        await using var context = NewContext(counter);
        context.Customers.Add(new Customer { Name = "never written", Mood = Mood.Sad });
        var watch = Stopwatch.StartNew();
        using (RwSplitScope.PreventWrites())
        {
            var error = Assert.ThrowsAsync<DbUpdateException>(() => context.SaveChangesAsync());
            Assert.That(error!.InnerException, Is.TypeOf<RwSplitException>().With.Property(nameof(RwSplitException.Error)).EqualTo(RwSplitError.WriteBlocked));
        }

        Assert.That(counter.Failures, Is.EqualTo(1), "one attempt");
        Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(1)), "no back-off");
    }
}

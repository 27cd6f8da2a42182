using System;
using System.Linq;
using System.Threading.Tasks;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using NUnit.Framework;
using RwSplit.EntityFrameworkCore;
using RwSplit.PostgreSql;

namespace RwSplit.EntityFrameworkCoreTests;

/// <summary><c>AddDbContext</c>, <c>AddDbContextPool</c> and <c>AddDbContextFactory</c> over data sources from the container.</summary>
[TestFixture]
public sealed class DependencyInjectionTests
{
    private const string Database = "ef_di";

    [OneTimeSetUp]
    public async Task CreateAsync()
    {
        _ = EfCluster.Cluster;
        await EfCluster.DropDatabaseAsync(Database);
        await using var dataSource = EfCluster.CreateDataSource(Database, o => o.HealthMonitoring = false);
        await using var context = new ShopContext(EfCluster.ShopOptions(dataSource));
        await context.Database.EnsureCreatedAsync();
        context.Customers.Add(new Customer { Name = "Ann", Mood = Mood.Happy });
        await context.SaveChangesAsync();
        await EfCluster.Cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(30));
    }

    [OneTimeTearDown]
    public Task DropAsync() => EfCluster.DropDatabaseAsync(Database);

    [TearDown]
    public Task ResumeAsync() => EfCluster.ResumeReplayAsync();

    private static void AddDataSource(IServiceCollection services, object? key = null)
    {
        void Configure(RwSplitOptions o)
        {
            o.UseNpgsql(b => b.MapEnum<Mood>("mood"));
            o.Primary = EfCluster.For(EfCluster.Cluster.Primary, Database);
            foreach (var replica in EfCluster.Replicas)
                o.Replicas.Add(EfCluster.For(replica, Database));
            o.HealthCheckInterval = TimeSpan.FromMilliseconds(100);
            o.MaxReplicaLag = TimeSpan.FromHours(1);
        }

        if (key is null)
            services.AddReadWriteSplit(Configure);
        else
            services.AddReadWriteSplit(key, Configure);
    }

    [Test]
    public async Task A_pooled_context_starts_each_lease_with_a_fresh_session()
    {
        var services = new ServiceCollection();
        AddDataSource(services);
        services.AddDbContextPool<ShopContext>((sp, o) => o.UseNpgsql(n => n.MapEnum<Mood>("mood")).UseRwSplit(sp), poolSize: 1);
        await using var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateScopes = true });
        await EfCluster.WaitForHealthyAsync(provider.GetRequiredService<RwSplitDataSource>());
        await EfCluster.PauseReplayAsync();

        ShopContext first;
        RwSplitConnection firstConnection;
        await using (var scope = provider.CreateAsyncScope())
        {
            first = scope.ServiceProvider.GetRequiredService<ShopContext>();
            first.Customers.Add(new Customer { Name = "Written in the first lease", Mood = Mood.Sad });
            await first.SaveChangesAsync();
            await first.Database.ExecuteSqlRawAsync("CREATE TEMP TABLE lease_scratch (id int)"); // pins the session to the primary
            firstConnection = (RwSplitConnection)first.Database.GetDbConnection();
            firstConnection.Consistency = ReadConsistency.Strong;
            Assert.That(await first.Customers.AnyAsync(c => c.Name == "Written in the first lease"), Is.True, "the lease reads its own write");
        }

        await using (var scope = provider.CreateAsyncScope())
        {
            var second = scope.ServiceProvider.GetRequiredService<ShopContext>();
            Assert.That(second, Is.SameAs(first), "the pool handed out the same context");
            var connection = (RwSplitConnection)second.Database.GetDbConnection();
            Assert.That(connection, Is.SameAs(firstConnection), "and kept its connection");
            Assert.That(connection.HasWritten, Is.False, "the first lease's write is forgotten");
            Assert.That(connection.Consistency, Is.EqualTo(ReadConsistency.ReadYourWrites), "so is the consistency it set");
            Assert.That(await second.Customers.AnyAsync(c => c.Name == "Written in the first lease"), Is.False, "the second lease reads a replica (no pin, no written state inherited), which has not replayed the first lease's write");
        }
    }

    [Test]
    public async Task A_keyed_data_source_serves_AddDbContext_and_AddDbContextFactory()
    {
        var services = new ServiceCollection();
        AddDataSource(services, "shop");
        services.AddDbContext<ShopContext>((sp, o) => o.UseNpgsql(n => n.MapEnum<Mood>("mood")).UseRwSplit(sp, "shop"));
        services.AddDbContextFactory<MigratedContext>((sp, o) => o.UseNpgsql().UseRwSplit(sp, "shop"));
        await using var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateScopes = true });

        await using (var scope = provider.CreateAsyncScope())
        {
            var context = scope.ServiceProvider.GetRequiredService<ShopContext>();
            Assert.That(await context.Customers.Select(c => c.Name).ToListAsync(), Does.Contain("Ann"));
            Assert.That(context.Database.GetDbConnection().ConnectionString, Is.EqualTo(provider.GetRequiredKeyedService<RwSplitDataSource>("shop").ConnectionString), "the keyed data source's connection");
            Assert.That(provider.GetService<RwSplitDataSource>(), Is.Null, "there is no unkeyed one it could have taken");
        }

        await using (var factoryContext = await provider.GetRequiredService<IDbContextFactory<MigratedContext>>().CreateDbContextAsync())
            Assert.That(factoryContext.Database.GetDbConnection(), Is.TypeOf<RwSplitConnection>());

        var missing = new ServiceCollection();
        missing.AddDbContext<ShopContext>((sp, o) => o.UseNpgsql().UseRwSplit(sp, "other"));
        await using var none = missing.BuildServiceProvider();
        var error = Assert.Throws<InvalidOperationException>(() => none.GetRequiredService<ShopContext>().Database.GetDbConnection());
        Assert.That(error!.Message, Does.Contain("No RwSplitDataSource is registered under the key 'other'"));
    }

    [Test]
    public async Task AddDbContextCheck_is_unhealthy_when_the_primary_is_down_although_the_replicas_are_up()
    {
        async Task<HealthStatus> CheckAsync(string primary)
        {
            var services = new ServiceCollection();
            services.AddLogging();
            services.AddReadWriteSplit(o =>
            {
                o.UseNpgsql(b => b.MapEnum<Mood>("mood"));
                o.Primary = primary;
                foreach (var replica in EfCluster.Replicas)
                    o.Replicas.Add(EfCluster.For(replica, Database));
                o.HealthMonitoring = false;
            });
            services.AddDbContext<ShopContext>((sp, o) => o.UseNpgsql(n => n.MapEnum<Mood>("mood")).UseRwSplit(sp));
            services.AddHealthChecks().AddDbContextCheck<ShopContext>();
            await using var provider = services.BuildServiceProvider();
            return (await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync()).Status;
        }

        Assert.That(await CheckAsync(EfCluster.For(EfCluster.Cluster.Primary, Database)), Is.EqualTo(HealthStatus.Healthy));
        Assert.That(await CheckAsync($"Host=127.0.0.1;Port=1;Username=postgres;Database={Database};Timeout=2"), Is.EqualTo(HealthStatus.Unhealthy), "CanConnect asks the primary");
    }
}

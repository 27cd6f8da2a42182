using System;
using System.Linq;
using System.Threading.Tasks;
using Microsoft.EntityFrameworkCore;
using NUnit.Framework;
using RwSplit.EntityFrameworkCore;
using RwSplit.PostgreSql;

namespace RwSplit.EntityFrameworkCoreTests;

/// <summary>
/// Database lifecycle and migrations through an RwSplit context: they run on the primary through Npgsql's own
/// connection (efcore.pg casts to it, and recognises only its errors), and the replicas receive what they did.
/// </summary>
[TestFixture]
public sealed class LifecycleTests
{
    private const string Database = "ef_lifecycle";
    private const string Migrated = "ef_migrated";

    [OneTimeSetUp]
    public void RequireCluster() => _ = EfCluster.Cluster;

    [OneTimeTearDown]
    public async Task DropAsync()
    {
        await EfCluster.DropDatabaseAsync(Database);
        await EfCluster.DropDatabaseAsync(Migrated);
    }

    private static Task<long> CountOnAsync(RwSplit.PgCluster.PgServer server, string database)
        => EfCluster.ScalarAsync<long>(server, "postgres", $"SELECT count(*) FROM pg_database WHERE datname = '{database}'");

    [Test]
    public async Task EnsureCreated_creates_a_missing_database_on_the_primary_and_EnsureDeleted_drops_it([Values] bool async)
    {
        await EfCluster.DropDatabaseAsync(Database);
        await using var dataSource = EfCluster.CreateDataSource(Database);
        await using var context = new ShopContext(EfCluster.ShopOptions(dataSource));

        Assert.That(async ? await context.Database.CanConnectAsync() : context.Database.CanConnect(), Is.False, "the database does not exist yet: the provider recognised Npgsql's 3D000");
        Assert.That(async ? await context.Database.EnsureCreatedAsync() : context.Database.EnsureCreated(), Is.True);
        Assert.That(await CountOnAsync(EfCluster.Cluster.Primary, Database), Is.EqualTo(1L));
        Assert.That(async ? await context.Database.CanConnectAsync() : context.Database.CanConnect(), Is.True);
        Assert.That(context.Database.EnsureCreated(), Is.False, "already there");

        // The context reads what EnsureCreated made at once (read-your-writes after a lifecycle command), here the enum type.
        context.Customers.Add(new Customer { Name = "Eve", Mood = Mood.Sad });
        await context.SaveChangesAsync();
        Assert.That(await context.Customers.Select(c => c.Mood).SingleAsync(), Is.EqualTo(Mood.Sad));

        await EfCluster.Cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(30));
        foreach (var replica in EfCluster.Replicas)
            Assert.That(await CountOnAsync(replica, Database), Is.EqualTo(1L), $"{replica} replayed CREATE DATABASE");

        Assert.That(async ? await context.Database.EnsureDeletedAsync() : context.Database.EnsureDeleted(), Is.True, "dropped although RwSplit's pools and monitor held connections to it");
        Assert.That(await CountOnAsync(EfCluster.Cluster.Primary, Database), Is.Zero);
        Assert.That(context.Database.CanConnect(), Is.False);
        Assert.That(context.Database.EnsureDeleted(), Is.False, "already gone");

        Assert.That(context.Database.EnsureCreated(), Is.True, "and created again: no dead pooled connection fails it");
        Assert.That(await context.Customers.CountAsync(), Is.Zero);
    }

    [Test]
    public async Task Migrate_creates_a_missing_database_and_applies_migrations_once([Values] bool async)
    {
        await EfCluster.DropDatabaseAsync(Migrated);
        await using var dataSource = EfCluster.CreateDataSource(Migrated);
        var options = new DbContextOptionsBuilder<MigratedContext>().UseNpgsql().UseRwSplit(dataSource).Options;
        await using var context = new MigratedContext(options);

        if (async)
            await context.Database.MigrateAsync();
        else
            context.Database.Migrate();
        Assert.That(await context.Notes.Select(n => n.Text).SingleAsync(), Is.EqualTo("seeded by the migration"), "read at once after the migration");
        Assert.That(await context.Database.GetAppliedMigrationsAsync(), Is.EqualTo(new[] { "20261203000000_Notes" }));

        context.Database.Migrate(); // nothing pending: the history was read on the primary, where the migration was recorded
        Assert.That(await EfCluster.ScalarAsync<long>(EfCluster.Cluster.Primary, Migrated, "SELECT count(*) FROM \"__EFMigrationsHistory\""), Is.EqualTo(1L));
    }

    [Test]
    public async Task Migrate_applies_migrations_on_an_existing_database_whose_replicas_are_paused()
    {
        await EfCluster.RecreateDatabaseAsync(Migrated);
        await using var dataSource = EfCluster.CreateDataSource(Migrated);
        await EfCluster.WaitForHealthyAsync(dataSource);
        await EfCluster.PauseReplayAsync();
        try
        {
            var options = new DbContextOptionsBuilder<MigratedContext>().UseNpgsql().UseRwSplit(dataSource).Options;
            await using (var context = new MigratedContext(options))
            {
                await context.Database.MigrateAsync();
                Assert.That(await context.Notes.CountAsync(), Is.EqualTo(1), "the replicas lack the table: this context reads the primary after its migration");
            }

            await using (var again = new MigratedContext(options))
                await again.Database.MigrateAsync(); // a replica would show an empty history (and no table): run twice, this proves it was not read there
        }
        finally
        {
            await EfCluster.ResumeReplayAsync();
        }
    }

    [Test]
    public async Task CanConnect_answers_for_the_primary_not_for_a_replica()
    {
        await EfCluster.RecreateDatabaseAsync(Database);
        await using (var primaryDown = EfCluster.CreateDataSource(Database, primary: "Host=127.0.0.1;Port=1;Username=postgres;Database=" + Database + ";Timeout=2"))
        await using (var context = new ShopContext(EfCluster.ShopOptions(primaryDown)))
        {
            Assert.That(await context.Database.CanConnectAsync(), Is.False, "the replicas are up, the primary is not");
        }

        await using var replicasDown = RwSplitDataSource.Create(o =>
        {
            o.UseNpgsql(b => b.MapEnum<Mood>("mood"));
            o.Primary = EfCluster.For(EfCluster.Cluster.Primary, Database);
            o.Replicas.Add("Host=127.0.0.1;Port=1;Username=postgres;Database=" + Database + ";Timeout=2");
            o.Name = "ef-replicas-down";
        });
        await using (var context = new ShopContext(EfCluster.ShopOptions(replicasDown)))
            Assert.That(context.Database.CanConnect(), Is.True, "the primary is up");
    }

    [Test]
    public void A_misconfigured_context_fails_with_the_fix_named()
    {
        using var dataSource = EfCluster.CreateDataSource(Database, o => o.HealthMonitoring = false);

        // Not disposed: a context whose options fail validation fails again in Dispose.
        var withString = new DbContextOptionsBuilder<ShopContext>().UseNpgsql("Host=127.0.0.1;Password=secret").UseRwSplit(dataSource).Options;
        var error = Assert.Throws<InvalidOperationException>(() => _ = new ShopContext(withString).Model);
        Assert.That(error!.Message, Does.Contain("call UseNpgsql() without one").And.Not.Contain("secret"));

        var before = new DbContextOptionsBuilder<ShopContext>().UseRwSplit(dataSource).UseNpgsql().Options;
        error = Assert.Throws<InvalidOperationException>(() => _ = new ShopContext(before).Model);
        Assert.That(error!.Message, Does.Contain("UseRwSplit must come after the provider's UseNpgsql() or UseSqlServer()"));

        var none = new DbContextOptionsBuilder<ShopContext>().UseRwSplit(dataSource).Options;
        Assert.That(() => _ = new ShopContext(none).Model, Throws.InvalidOperationException);
    }
}

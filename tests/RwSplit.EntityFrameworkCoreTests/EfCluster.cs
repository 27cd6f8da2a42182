using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading.Tasks;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using NUnit.Framework;
using RwSplit.PgCluster;
using RwSplit.PostgreSql;
using RwSplit.EntityFrameworkCore;
using RwSplit.TestSupport;

namespace RwSplit.EntityFrameworkCoreTests;

/// <summary>One PostgreSQL cluster for the assembly (ports 25500–25503): a primary with two streaming replicas, and a second primary.</summary>
[SetUpFixture]
public sealed class ClusterSetup
{
    [OneTimeSetUp]
    public async Task StartAsync() => EfCluster.Started = await TestClusters.StartOrIgnoreAsync(new LocalPgClusterOptions { BasePort = 25500 });

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        if (EfCluster.Started is { } cluster)
            await cluster.DisposeAsync();
    }
}

/// <summary>The cluster, and the data sources, contexts and server commands the tests use.</summary>
internal static class EfCluster
{
    internal static LocalPgCluster? Started { get; set; }

    public static LocalPgCluster Cluster => Started ?? throw new InvalidOperationException("The cluster did not start.");

    /// <summary>A server's connection string for another database.</summary>
    public static string For(PgServer server, string database, string application = "ef-tests")
        => new NpgsqlConnectionStringBuilder(server.ConnectionString) { Database = database, ApplicationName = application }.ConnectionString;

    /// <summary>
    /// A data source over the primary and both replicas for <paramref name="database"/>, monitored every 100 ms, whose
    /// replicas stay in rotation however far their replay is paused (so that a paused replica tells where a read ran).
    /// </summary>
    public static RwSplitDataSource CreateDataSource(string database, Action<RwSplitOptions>? configure = null, string? primary = null)
        => RwSplitDataSource.Create(o =>
        {
            o.UseNpgsql(b => b.MapEnum<Mood>("mood"));
            o.Primary = primary ?? For(Cluster.Primary, database);
            foreach (var replica in Cluster.Replicas)
                o.Replicas.Add(For(replica, database));
            o.Name = "ef-" + database;
            o.HealthCheckInterval = TimeSpan.FromMilliseconds(100);
            o.MaxReplicaLag = TimeSpan.FromHours(1);
            o.ReplicaRetryDelay = TimeSpan.FromMilliseconds(200);
            configure?.Invoke(o);
        });

    /// <summary>The options of a shop context over <paramref name="dataSource"/>, with enums mapped as the data source maps them.</summary>
    public static DbContextOptions<ShopContext> ShopOptions(RwSplitDataSource dataSource, Action<Npgsql.EntityFrameworkCore.PostgreSQL.Infrastructure.NpgsqlDbContextOptionsBuilder>? npgsql = null)
        => new DbContextOptionsBuilder<ShopContext>()
            .UseNpgsql(o =>
            {
                o.MapEnum<Mood>("mood");
                npgsql?.Invoke(o);
            })
            .UseRwSplit(dataSource)
            .Options;

    /// <summary>Creates <paramref name="database"/> on the primary (dropping it first) with raw Npgsql, and waits for the replicas to have it.</summary>
    public static async Task RecreateDatabaseAsync(string database)
    {
        await DropDatabaseAsync(database);
        await ExecuteAsync(Cluster.Primary, "postgres", $"CREATE DATABASE \"{database}\"");
        await Cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(30));
    }

    public static Task DropDatabaseAsync(string database)
        => ExecuteAsync(Cluster.Primary, "postgres", $"DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)");

    public static async Task ExecuteAsync(PgServer server, string database, string sql)
    {
        await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(For(server, database)) { Pooling = false }.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    public static async Task<T?> ScalarAsync<T>(PgServer server, string database, string sql)
    {
        await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(For(server, database)) { Pooling = false }.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        var value = await command.ExecuteScalarAsync();
        return value is DBNull or null ? default : (T)value;
    }

    /// <summary>Pauses WAL replay on both replicas: from now on a read that sees a later write ran on the primary.</summary>
    public static async Task PauseReplayAsync()
    {
        await Cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(30));
        foreach (var replica in Cluster.Replicas)
            await replica.PauseReplayAsync();
    }

    public static async Task ResumeReplayAsync()
    {
        foreach (var replica in Cluster.Replicas)
            await replica.ResumeReplayAsync();
        await Cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>Waits until the data source's monitor sees every endpoint reachable (after the database was created).</summary>
    public static async Task WaitForHealthyAsync(RwSplitDataSource dataSource)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (true)
        {
            var health = dataSource.GetHealth();
            if (health.CompletedRounds > 1 && health.Endpoints.All(e => e.IsAvailable))
                return;
            if (DateTime.UtcNow > deadline)
                Assert.Fail("The monitor did not see every endpoint available: " + string.Join("; ", health.Endpoints.Select(e => $"{e.Address} {e.ConfiguredRole} available={e.IsAvailable} {e.LastErrorKind}")));
            await Task.Delay(100);
        }
    }

    public static IEnumerable<PgServer> Replicas => Cluster.Replicas;
}

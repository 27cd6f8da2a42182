using System;
using System.Threading.Tasks;
using Npgsql;
using NUnit.Framework;
using RwSplit.PgCluster;
using RwSplit.TestSupport;

namespace RwSplit.ConformanceTests;

/// <summary>
/// One PostgreSQL primary and one streaming replica for the whole suite (ports 25470–25471, apart from the other test
/// projects' clusters), and the table the tests use.
/// </summary>
[SetUpFixture]
public sealed class Servers
{
    private static LocalPgCluster? _cluster;

    public static LocalPgCluster Cluster => _cluster ?? throw new InvalidOperationException("The PostgreSQL cluster was not started.");

    /// <summary>The primary's password (empty when the cluster trusts local connections), for checks that it never leaks.</summary>
    public static string Password => TestClusters.PasswordOf(Cluster);

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _cluster = await TestClusters.StartOrIgnoreAsync(new LocalPgClusterOptions { BasePort = 25470, ReplicaCount = 1, StartSecondPrimary = false });

        await using var primary = new NpgsqlConnection(Cluster.PrimaryConnectionString);
        await primary.OpenAsync();
        await using var command = primary.CreateCommand();
        command.CommandText = """
            DROP TABLE IF EXISTS conformance;
            CREATE TABLE conformance (id int PRIMARY KEY, name text NOT NULL, amount numeric(10, 2), seen timestamptz);
            INSERT INTO conformance SELECT g, 'row ' || g, g * 1.5, timestamptz '2026-01-01' + g * interval '1 day' FROM generate_series(1, 10) g;
            """;
        await command.ExecuteNonQueryAsync();
        await Cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(30));
    }

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        if (_cluster is not null)
            await _cluster.DisposeAsync();
    }
}

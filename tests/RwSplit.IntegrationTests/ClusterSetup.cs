using System;
using System.Threading.Tasks;
using Npgsql;
using NUnit.Framework;
using RwSplit.PgCluster;
using RwSplit.TestSupport;

namespace RwSplit.IntegrationTests;

/// <summary>
/// Starts the local PostgreSQL servers once for the whole assembly (a primary with two streaming replicas and a second
/// primary), or uses the servers named by RWSPLIT_PG_PRIMARY / RWSPLIT_PG_REPLICAS / RWSPLIT_PG_SECOND_PRIMARY.
/// Locally, servers that cannot start make the tests inconclusive with the reason; under CI they fail.
/// </summary>
[SetUpFixture]
public sealed class ClusterSetup
{
    private static LocalPgCluster? _cluster;

    public static LocalPgCluster Cluster => _cluster ?? throw new InvalidOperationException("The PostgreSQL cluster was not started.");

    public static bool IsCI => TestClusters.IsCI;

    [OneTimeSetUp]
    public async Task StartServersAsync()
    {
        _cluster = await TestClusters.StartOrIgnoreAsync();

        await using var primary = new NpgsqlConnection(Cluster.PrimaryConnectionString);
        await primary.OpenAsync();
        await using (var cmd = primary.CreateCommand())
        {
            cmd.CommandText = """
                DROP TABLE IF EXISTS items, audit CASCADE;
                DROP SEQUENCE IF EXISTS item_seq;
                CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, written_on int);
                CREATE TABLE audit (id serial PRIMARY KEY, note text, written_on int);
                CREATE SEQUENCE item_seq;
                INSERT INTO items SELECT g, 'item ' || g, inet_server_port() FROM generate_series(1, 100) g;
                CREATE OR REPLACE FUNCTION add_audit(note text) RETURNS int LANGUAGE sql VOLATILE AS
                  $$ INSERT INTO audit(note, written_on) VALUES (note, inet_server_port()) RETURNING written_on $$;
                CREATE OR REPLACE FUNCTION item_name(item_id int) RETURNS text LANGUAGE sql STABLE AS
                  $$ SELECT name FROM items WHERE id = item_id $$;
                CREATE OR REPLACE PROCEDURE touch_item(item_id int) LANGUAGE sql AS
                  $$ UPDATE items SET written_on = inet_server_port() WHERE id = item_id $$;
                """;
            await cmd.ExecuteNonQueryAsync();
        }

        await Cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(30));

        // Identify each server by the port it reports itself, so that the same assertions hold for external servers.
        PrimaryPort = await PortOfAsync(Cluster.PrimaryConnectionString);
        var replicaPorts = new int[Cluster.ReplicaConnectionStrings.Count];
        for (var i = 0; i < replicaPorts.Length; i++)
            replicaPorts[i] = await PortOfAsync(Cluster.ReplicaConnectionStrings[i]);
        ReplicaPorts = replicaPorts;
    }

    /// <summary>The port the primary reports (<c>inet_server_port()</c>).</summary>
    public static int PrimaryPort { get; private set; }

    /// <summary>The ports the replicas report, in configuration order.</summary>
    public static System.Collections.Generic.IReadOnlyList<int> ReplicaPorts { get; private set; } = Array.Empty<int>();

    private static async Task<int> PortOfAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT inet_server_port()", connection);
        return (int)(await cmd.ExecuteScalarAsync())!;
    }

    [OneTimeTearDown]
    public async Task StopServersAsync()
    {
        if (_cluster is not null)
            await _cluster.DisposeAsync();
    }
}

using System;
using System.Threading.Tasks;
using Npgsql;
using NUnit.Framework;
using RwSplit.PgCluster;
using RwSplit.TestSupport;

namespace RwSplit.OperationsTests.OpenTelemetry;

/// <summary>
/// One PostgreSQL primary (port 25484) and one streaming replica (25485) for the OpenTelemetry tests, with two more
/// databases on the primary for distributed transactions (<see cref="Bank1"/>, <see cref="Bank2"/>).
/// </summary>
[SetUpFixture]
public sealed class OtelCluster
{
    private static LocalPgCluster? _cluster;

    public static LocalPgCluster Cluster => _cluster ?? throw new InvalidOperationException("The PostgreSQL cluster was not started.");

    /// <summary>The first bank database on the primary.</summary>
    public static string Bank1 => Database("otel_bank_1");

    /// <summary>The second bank database on the primary.</summary>
    public static string Bank2 => Database("otel_bank_2");

    /// <summary>The primary's password (a marker that cannot occur when the cluster trusts local connections), for checks that it never leaks.</summary>
    public static string Password => TestClusters.PasswordOf(Cluster);

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _cluster = await TestClusters.StartOrIgnoreAsync(new LocalPgClusterOptions { BasePort = 25484, ReplicaCount = 1, StartSecondPrimary = false });

        await using var primary = new NpgsqlConnection(Cluster.PrimaryConnectionString);
        await primary.OpenAsync();
        foreach (var name in new[] { "otel_bank_1", "otel_bank_2" })
        {
            await using var exists = new NpgsqlCommand($"SELECT 1 FROM pg_database WHERE datname = '{name}'", primary);
            if (await exists.ExecuteScalarAsync() is null)
            {
                await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", primary);
                await create.ExecuteNonQueryAsync();
            }
        }

        await using var command = primary.CreateCommand();
        command.CommandText = """
            DROP TABLE IF EXISTS otel_rows;
            CREATE TABLE otel_rows (id bigint PRIMARY KEY, note text NOT NULL);
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

    private static string Database(string name) => new NpgsqlConnectionStringBuilder(Cluster.PrimaryConnectionString) { Database = name }.ConnectionString;
}

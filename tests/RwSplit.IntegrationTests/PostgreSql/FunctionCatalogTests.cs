using System;
using System.Linq;
using System.Threading.Tasks;
using Npgsql;
using NUnit.Framework;
using RwSplit.PostgreSql;
using RwSplit.Routing;
using RwSplit.TestSupport;
using static RwSplit.IntegrationTests.ClusterSetup;

namespace RwSplit.IntegrationTests.PostgreSql;

/// <summary>
/// The function catalog a read that calls a user function needs: loaded from the first server that answers (replicas
/// first, then the primary), each failure logged with its server, the load logged with the number of names.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class FunctionCatalogTests
{
    [Test]
    public async Task A_server_the_catalog_cannot_load_from_is_logged_and_the_next_one_is_used()
    {
        var function = "rwsplit_catalog_" + Guid.NewGuid().ToString("N")[..8];
        await using (var connection = new NpgsqlConnection(Cluster.PrimaryConnectionString))
        {
            await connection.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE FUNCTION {function}() RETURNS int LANGUAGE sql STABLE AS 'SELECT 7'", connection);
            await create.ExecuteNonQueryAsync();
        }

        await Cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(30));
        using var telemetry = new TelemetryCapture();
        var dead = new NpgsqlConnectionStringBuilder(Cluster.ReplicaConnectionStrings[0]) { Port = 1, Timeout = 2 }.ConnectionString;
        await using var dataSource = RwSplitDataSource.Create(o =>
        {
            o.UseNpgsql();
            o.Primary = Cluster.PrimaryConnectionString;
            o.Replicas.Add(dead); // the catalog is tried here first and fails
            o.Replicas.Add(Cluster.ReplicaConnectionStrings[0]);
            o.HealthMonitoring = false;
            o.Consistency = ReadConsistency.Eventual;
            o.LoggerFactory = telemetry.LoggerFactory;
        });
        await using var rw = await dataSource.OpenConnectionAsync();
        await using var command = rw.CreateCommand();
        command.CommandText = $"SELECT {function}()";
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo(7));
        Assert.That(command.LastDecision?.Target, Is.EqualTo(RouteTarget.Replica), "a stable user function: the read stays on a replica");

        var failed = telemetry.Logged(1005).Single();
        Assert.That(failed.Message, Is.EqualTo($"Could not load the function catalog from {dataSource.ReplicaAddresses[0]}; reads that call functions go to the primary until it loads"));
        Assert.That(failed.Exception, Is.Not.Null);
        var loaded = telemetry.Logged(1004).Single();
        Assert.That(loaded.Message, Does.StartWith("Loaded ").And.EndWith($" function names from the catalog of {dataSource.ReplicaAddresses[1]}"));
        var count = int.Parse(loaded.Message.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.That(count, Is.GreaterThan(100), "the built-in functions and the test's own");
        telemetry.AssertNothingContains(new NpgsqlConnectionStringBuilder(Cluster.PrimaryConnectionString).Password ?? "no password set");
    }
}

using System;
using System.Linq;
using System.Threading.Tasks;
using Npgsql;
using NUnit.Framework;
using RwSplit.PostgreSql;
using RwSplit.Routing;

namespace RwSplit.IntegrationTests.PostgreSql;

/// <summary>
/// <see cref="RwSplitOptions.PrimaryReadWeight"/> on real servers: with a slow read in flight on each replica, the next
/// read runs on the primary (the server that answers says so), and the session's later reads stay there; with weight 0
/// it waits its turn on a replica.
/// </summary>
[TestFixture]
public sealed class PrimaryReadsTests
{
    private static int PortOf(string connectionString) => new NpgsqlConnectionStringBuilder(connectionString).Port;

    [Test]
    [CancelAfter(60_000)]
    public async Task A_read_goes_to_the_primary_while_every_replica_has_more_in_flight([Values(1.0, 0.0)] double weight)
    {
        var cluster = ClusterSetup.Cluster;
        await using var dataSource = RwSplitDataSource.Create(o =>
        {
            o.UseNpgsql();
            o.Name = "primary-reads";
            o.Primary = cluster.PrimaryConnectionString;
            foreach (var replica in cluster.ReplicaConnectionStrings)
                o.Replicas.Add(replica);
            o.HealthMonitoring = false;
            o.Consistency = ReadConsistency.Eventual;
            o.PrimaryReadWeight = weight;
            o.ReadOnlyFunctions.Add("pg_sleep"); // so that the slow statements are reads
        });

        // A slow read on each replica: least-outstanding balancing sends the second to the replica the first left idle,
        // and with nothing in flight anywhere a tie goes to a replica, never to the primary.
        var slow = new (RwSplitConnection Connection, RwSplitCommand Command, Task<object?> Running)[2];
        for (var i = 0; i < slow.Length; i++)
        {
            var connection = await dataSource.OpenConnectionAsync();
            var command = connection.CreateCommand();
            command.CommandText = "SELECT inet_server_port() FROM pg_sleep(2)";
            slow[i] = (connection, command, command.ExecuteScalarAsync());
        }

        try
        {
            await Task.Delay(300);
            Assert.That(slow.Select(s => s.Command.LastDecision?.Target), Is.All.EqualTo(RouteTarget.Replica));
            Assert.That(slow.Select(s => s.Command.LastDecision?.ReplicaIndex).Distinct().Count(), Is.EqualTo(2), "one on each replica");

            await using var connection = await dataSource.OpenConnectionAsync();
            await using var read = connection.CreateCommand();
            read.CommandText = "SELECT inet_server_port()";
            var port = Convert.ToInt32(await read.ExecuteScalarAsync());
            if (weight > 0)
            {
                Assert.That(port, Is.EqualTo(PortOf(cluster.PrimaryConnectionString)), "the idle primary served the read");
                Assert.That(read.LastDecision, Is.EqualTo(RoutingDecision.ToPrimary(RoutingReason.PrimaryCapacity)));
                Assert.That(Convert.ToInt32(await read.ExecuteScalarAsync()), Is.EqualTo(port), "the session's next read stays there");
            }
            else
            {
                Assert.That(cluster.ReplicaConnectionStrings.Select(PortOf), Does.Contain(port), "weight 0: the primary is kept for writes");
            }
        }
        finally
        {
            foreach (var (connection, command, running) in slow)
            {
                Assert.That(cluster.ReplicaConnectionStrings.Select(PortOf), Does.Contain(Convert.ToInt32(await running)));
                await command.DisposeAsync();
                await connection.DisposeAsync();
            }
        }
    }
}

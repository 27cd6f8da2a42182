using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading.Tasks;
using Npgsql;
using NUnit.Framework;
using RwSplit.PostgreSql;
using RwSplit.Routing;

namespace RwSplit.IntegrationTests.PostgreSql;

/// <summary>
/// <see cref="RwSplitOptions.ReplicaWeights"/> on real servers, the server that answers (<c>inet_server_port()</c>) being
/// the judge: reads split in proportion to the weights, and a replica of weight 0 serves only when the weighted one
/// cannot.
/// </summary>
[TestFixture]
public sealed class ReplicaWeightsTests
{
    private static int PortOf(string connectionString) => new NpgsqlConnectionStringBuilder(connectionString).Port;

    private static RwSplitDataSource Create(string name, IReadOnlyList<string> replicas, double[] weights, ReplicaBalancing balancing = ReplicaBalancing.LeastOutstanding)
        => RwSplitDataSource.Create(o =>
        {
            o.UseNpgsql();
            o.Name = name;
            o.Primary = ClusterSetup.Cluster.PrimaryConnectionString;
            foreach (var replica in replicas)
                o.Replicas.Add(replica);
            foreach (var weight in weights)
                o.ReplicaWeights.Add(weight);
            o.HealthMonitoring = false;
            o.Consistency = ReadConsistency.Eventual;
            o.PrimaryReadWeight = 0;
            o.Balancing = balancing;
        });

    private static async Task<Dictionary<int, int>> ReadPortsAsync(RwSplitDataSource dataSource, int reads)
    {
        var ports = new Dictionary<int, int>();
        for (var i = 0; i < reads; i++)
        {
            await using var connection = await dataSource.OpenConnectionAsync(); // a new logical connection: a new choice
            await using var command = connection.CreateCommand();
            command.CommandText = "SELECT inet_server_port()";
            var port = Convert.ToInt32(await command.ExecuteScalarAsync());
            ports[port] = ports.GetValueOrDefault(port) + 1;
        }

        return ports;
    }

    [Test]
    public async Task Reads_split_in_proportion_to_the_weights([Values] ReplicaBalancing balancing)
    {
        var replicas = ClusterSetup.Cluster.ReplicaConnectionStrings;
        await using var dataSource = Create("replica-weights-" + balancing, replicas, [1, 3], balancing);
        var ports = await ReadPortsAsync(dataSource, 400);
        TestContext.Out.WriteLine(string.Join(", ", ports.Select(p => $"{p.Key}: {p.Value}")));
        Assert.That(ports.Keys, Is.EquivalentTo(replicas.Select(PortOf)), "replicas only (PrimaryReadWeight 0)");
        Assert.That(ports[PortOf(replicas[0])], Is.InRange(90, 110), "weight 1 of 4");
        Assert.That(ports[PortOf(replicas[1])], Is.InRange(290, 310), "weight 3 of 4");
    }

    [Test]
    public async Task A_replica_of_weight_0_serves_only_when_the_others_cannot()
    {
        var replicas = ClusterSetup.Cluster.ReplicaConnectionStrings;
        await using (var dataSource = Create("replica-weight-0", replicas, [0, 1]))
        {
            var ports = await ReadPortsAsync(dataSource, 50);
            Assert.That(ports, Is.EqualTo(new Dictionary<int, int> { [PortOf(replicas[1])] = 50 }), "the standby of weight 0 takes none");
        }

        // The weighted replica is a server that refuses connections: the standby takes the reads.
        var refusing = new NpgsqlConnectionStringBuilder(replicas[1]) { Port = 1, Timeout = 2 }.ConnectionString;
        await using (var dataSource = Create("replica-weight-0-standby", [replicas[0], refusing], [0, 1]))
        {
            var ports = await ReadPortsAsync(dataSource, 20);
            Assert.That(ports, Is.EqualTo(new Dictionary<int, int> { [PortOf(replicas[0])] = 20 }), "every read on the standby, none failed");
        }
    }
}

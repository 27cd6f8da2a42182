using System;
using System.Linq;
using System.Threading.Tasks;
using NUnit.Framework;
using RwSplit.Routing;
using RwSplit.SqlServer;
using RwSplit.Tds;
using RwSplit.Topology;

namespace RwSplit.TdsTests;

/// <summary>
/// The topology monitor's SQL Server probe (<see cref="SqlServerDialect.HealthProbeQuery"/>) and read-your-writes
/// position query, sent by the real SqlClient and answered by the scripted servers by role: without VIEW SERVER STATE
/// (the default, roles only) and with it (availability-group positions and lag).
/// </summary>
[TestFixture]
[Category("Tds")]
public sealed class TdsMonitorTests : TdsTestBase
{
    [Test]
    public async Task Monitor_sees_roles_through_the_probe_without_view_server_state()
    {
        var dataSource = CreateDataSource();
        await dataSource.RefreshTopologyAsync();
        var topology = dataSource.GetTopology();

        Assert.That(topology.Select(e => e.ObservedRole), Is.EqualTo(new EndpointRole?[] { EndpointRole.Primary, EndpointRole.Replica, EndpointRole.Replica }), string.Join(Environment.NewLine, topology));
        Assert.That(topology.Select(e => (e.IsReachable, e.IsAvailable)), Is.All.EqualTo((true, true)));
        Assert.That(topology.Select(e => e.Position), Is.All.Null, "no VIEW SERVER STATE: no positions");
        Assert.That(topology.Skip(1).Select(e => e.ReplicationLag), Is.All.Null);
        foreach (var server in new[] { Primary, Replica1, Replica2 })
        {
            var probes = server.Journal.Where(r => r.IsMonitor && r.Kind == TdsRequestKind.SqlBatch).ToArray();
            Assert.That(probes, Is.Not.Empty);
            Assert.That(probes.Select(r => r.Outcome), Is.All.EqualTo("built-in: health probe"));
            Assert.That(server.Journal.Where(r => r.IsMonitor && r.Kind == TdsRequestKind.Login).Select(r => r.Login!.ReadOnlyIntent), Is.All.EqualTo(server != Primary));
        }
    }

    [Test]
    public async Task Monitor_reads_positions_and_lag_and_ejects_a_lagging_secondary([Values] bool async)
    {
        Primary.Replication = new TdsReplicationState(Position: 5_000_000);
        Replica1.Replication = new TdsReplicationState(Position: 5_000_000, LagSeconds: 0.25);
        Replica2.Replication = new TdsReplicationState(Position: 1_000_000, LagSeconds: 42.5);
        var dataSource = CreateDataSource(o =>
        {
            o.Consistency = ReadConsistency.Eventual;
            o.MaxReplicaLag = TimeSpan.FromSeconds(10);
        });
        await dataSource.RefreshTopologyAsync();
        var topology = dataSource.GetTopology();

        Assert.That(topology[0].Position, Is.EqualTo(5_000_000));
        Assert.That((topology[1].IsAvailable, topology[1].PositionLag, topology[1].ReplicationLag), Is.EqualTo((true, (long?)0, (TimeSpan?)TimeSpan.Zero)), topology[1].ToString());
        Assert.That((topology[2].IsAvailable, topology[2].PositionLag, topology[2].ReplicationLag), Is.EqualTo((false, (long?)4_000_000, (TimeSpan?)TimeSpan.FromSeconds(42.5))), topology[2].ToString());

        await using var connection = await OpenAsync(dataSource, async);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT @@SERVERNAME";
        for (var i = 0; i < 3; i++)
            Assert.That(await ScalarAsync(command, async), Is.EqualTo("sql-replica-1"), "the lagging secondary gets no reads");
    }

    [Test]
    public async Task Read_after_write_goes_to_a_secondary_that_replayed_it([Values] bool async)
    {
        Primary.Replication = new TdsReplicationState(Position: 7_000);
        Replica1.Replication = new TdsReplicationState(Position: 6_999, LagSeconds: 1);
        Replica2.Replication = new TdsReplicationState(Position: 7_000, LagSeconds: 0);
        Primary.OnText("INSERT dbo.orders (id) VALUES (1)", TdsReply.Affected(1));
        var dataSource = CreateDataSource(); // ReadYourWrites, the default
        await dataSource.RefreshTopologyAsync();

        await using var connection = await OpenAsync(dataSource, async);
        await using var command = connection.CreateCommand();
        command.CommandText = "INSERT dbo.orders (id) VALUES (1)";
        await NonQueryAsync(command, async);
        command.CommandText = "SELECT @@SERVERNAME";
        Assert.That(await ScalarAsync(command, async), Is.EqualTo("sql-replica-2"));
        Assert.That(command.LastDecision?.Reason, Is.EqualTo(RoutingReason.CaughtUpReplica));

        // RwSplit asked the primary for its position right after the write, on the application's connection.
        Assert.That(Ran(Primary), Is.EqualTo(new[] { "INSERT dbo.orders (id) VALUES (1)", SqlServerDialect.Instance.WritePositionQuery }));
        Assert.That(Ran(Replica1), Is.Empty);
    }

    [Test]
    public async Task Read_after_write_without_view_server_state_uses_the_primary([Values] bool async)
    {
        Primary.OnText("INSERT dbo.orders (id) VALUES (1)", TdsReply.Affected(1));
        var dataSource = CreateDataSource();
        await dataSource.RefreshTopologyAsync();
        await using var connection = await OpenAsync(dataSource, async);
        await using var command = connection.CreateCommand();
        command.CommandText = "INSERT dbo.orders (id) VALUES (1)";
        await NonQueryAsync(command, async);
        command.CommandText = "SELECT @@SERVERNAME";
        Assert.That(await ScalarAsync(command, async), Is.EqualTo("sql-primary"), "no position and no lag known: only the primary surely has the write");
        Assert.That(command.LastDecision?.Reason, Is.EqualTo(RoutingReason.ReadYourWrites));
    }

    [Test]
    public async Task Failover_a_secondary_that_reports_itself_primary_takes_the_writes()
    {
        Replica1.OnText("UPDATE dbo.orders SET status = 1", TdsReply.Affected(2));
        var dataSource = CreateDataSource(o => o.Consistency = ReadConsistency.Eventual);
        await dataSource.RefreshTopologyAsync();

        Primary.RefuseConnections = true;
        Primary.DropConnections();
        Replica1.Role = TdsServerRole.Primary;
        await dataSource.RefreshTopologyAsync();
        Assert.That(dataSource.CurrentPrimaryAddress, Is.EqualTo(dataSource.ReplicaAddresses[0]), string.Join(Environment.NewLine, dataSource.GetTopology()));

        await using var connection = await dataSource.OpenConnectionAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "UPDATE dbo.orders SET status = 1";
        Assert.That(await command.ExecuteNonQueryAsync(), Is.EqualTo(2));
        Assert.That(Ran(Replica1), Is.EqualTo(new[] { "UPDATE dbo.orders SET status = 1" }));
    }
}

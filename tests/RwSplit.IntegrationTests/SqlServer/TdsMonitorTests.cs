using System;
using System.Linq;
using System.Threading.Tasks;
using NUnit.Framework;
using RwSplit.Routing;
using RwSplit.SqlServer;
using RwSplit.Tds;
using RwSplit.Topology;
using static RwSplit.Tds.TdsReplicationState;

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
        Primary.Replication = new TdsReplicationState(Lsn(40, 5_000, 2));
        Replica1.Replication = new TdsReplicationState(Lsn(40, 5_000, 2), LagSeconds: 0.25);
        Replica2.Replication = new TdsReplicationState(Lsn(40, 5_000, 2), LastRedoneLsn: Lsn(39, 1_000, 7), LagSeconds: 42.5);
        var dataSource = CreateDataSource(o =>
        {
            o.Consistency = ReadConsistency.Eventual;
            o.MaxReplicaLag = TimeSpan.FromSeconds(10);
        });
        await dataSource.RefreshTopologyAsync();
        var topology = dataSource.GetTopology();

        Assert.That(topology[0].Position, Is.EqualTo(SqlServerDialect.Instance.Replication.ToPosition(Lsn(40, 5_000, 2))));
        Assert.That((topology[1].IsAvailable, topology[1].PositionLag, topology[1].ReplicationLag), Is.EqualTo((true, (long?)0, (TimeSpan?)TimeSpan.Zero)), topology[1].ToString());
        Assert.That((topology[2].IsAvailable, topology[2].PositionLag > 0, topology[2].ReplicationLag), Is.EqualTo((false, true, (TimeSpan?)TimeSpan.FromSeconds(42.5))), topology[2].ToString());

        await using var connection = await OpenAsync(dataSource, async);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT @@SERVERNAME";
        for (var i = 0; i < 3; i++)
            Assert.That(await ScalarAsync(command, async), Is.EqualTo("sql-replica-1"), "the lagging secondary gets no reads");
    }

    [Test]
    public async Task Read_after_write_goes_to_a_secondary_that_replayed_it([Values] bool async)
    {
        Primary.Replication = new TdsReplicationState(Lsn(41, 7_000, 3));
        Replica1.Replication = new TdsReplicationState(Lsn(41, 6_999, 9), LagSeconds: 1);
        Replica2.Replication = new TdsReplicationState(Lsn(41, 7_000, 3), LagSeconds: 0);
        Primary.OnText("INSERT dbo.orders (id) VALUES (1)", TdsReply.Affected(1));
        var dataSource = CreateDataSource(o => o.ReadAfterWrite = ReadAfterWrite.WaitForReplica); // ReadYourWrites, the default
        await dataSource.RefreshTopologyAsync();

        await using var connection = await OpenAsync(dataSource, async);
        await using var command = connection.CreateCommand();
        command.CommandText = "INSERT dbo.orders (id) VALUES (1)";
        await NonQueryAsync(command, async);
        command.CommandText = "SELECT @@SERVERNAME";
        Assert.That(await ScalarAsync(command, async), Is.EqualTo("sql-replica-2"));
        Assert.That(command.LastDecision?.Reason, Is.EqualTo(RoutingReason.CaughtUpReplica));

        // RwSplit asked the primary for its position right after the write, on the application's connection.
        Assert.That(Ran(Primary), Is.EqualTo(new[] { "INSERT dbo.orders (id) VALUES (1)", SqlServerDialect.Instance.Replication.WritePositionQuery }));
        Assert.That(Ran(Replica1), Is.Empty);
    }

    /// <summary>
    /// The default, <see cref="ReadAfterWrite.OpenPrimary"/>: the read after the write runs on the primary connection the
    /// write used, and the primary sees exactly the application's two statements (no position query), as without RwSplit.
    /// </summary>
    [Test]
    public async Task Read_after_write_runs_on_the_primary_connection_the_write_used_by_default([Values] bool async)
    {
        Primary.Replication = new TdsReplicationState(Lsn(41, 7_000, 3));
        Replica1.Replication = new TdsReplicationState(Lsn(41, 7_000, 3), LagSeconds: 0);
        Replica2.Replication = new TdsReplicationState(Lsn(41, 7_000, 3), LagSeconds: 0);
        Primary.OnText("INSERT dbo.orders (id) VALUES (1)", TdsReply.Affected(1));
        var dataSource = CreateDataSource();
        await dataSource.RefreshTopologyAsync();

        await using var connection = await OpenAsync(dataSource, async);
        await using var command = connection.CreateCommand();
        command.CommandText = "INSERT dbo.orders (id) VALUES (1)";
        await NonQueryAsync(command, async);
        command.CommandText = "SELECT @@SERVERNAME";
        Assert.That(await ScalarAsync(command, async), Is.EqualTo("sql-primary"));
        Assert.That(command.LastDecision, Is.EqualTo(RoutingDecision.ToPrimary(RoutingReason.ReadAfterWrite)));
        Assert.That(Ran(Primary), Is.EqualTo(new[] { "INSERT dbo.orders (id) VALUES (1)", "SELECT @@SERVERNAME" }));
        Assert.That(Ran(Replica1).Concat(Ran(Replica2)), Is.Empty, "no wait on a secondary");

        // A new connection that has not written reads a secondary.
        await using var other = await OpenAsync(dataSource, async);
        await using var read = other.CreateCommand();
        read.CommandText = "SELECT @@SERVERNAME";
        Assert.That(await ScalarAsync(read, async), Does.StartWith("sql-replica-"));
    }

    /// <summary>
    /// A synchronous-commit secondary has hardened the write (its <c>last_commit_lsn</c> and <c>last_commit_time</c> are the
    /// primary's) but redo has not applied it: its readers would not see it. Only redo's position may count. Old code
    /// compared <c>last_commit_time</c> and sent the read to a secondary that had not redone the write.
    /// </summary>
    [Test]
    public async Task Read_after_write_waits_for_redo_not_for_hardening([Values] bool async)
    {
        var committedAt = new DateTime(2026, 12, 2, 10, 0, 0, DateTimeKind.Utc);
        var write = Lsn(41, 7_000, 3);
        Primary.Replication = new TdsReplicationState(write, LastCommitTime: committedAt);
        Replica1.Replication = new TdsReplicationState(write, LastRedoneLsn: Lsn(41, 6_990, 1), LagSeconds: 0.2, LastCommitTime: committedAt);
        Replica2.Replication = new TdsReplicationState(write, LastRedoneLsn: Lsn(41, 7_000, 2), LagSeconds: 0.2, LastCommitTime: committedAt);
        Primary.OnText("INSERT dbo.orders (id) VALUES (1)", TdsReply.Affected(1));
        var dataSource = CreateDataSource(o =>
        {
            o.ReadYourWritesTimeout = TimeSpan.FromMilliseconds(200);
            o.ReadAfterWrite = ReadAfterWrite.WaitForReplica;
        });
        await dataSource.RefreshTopologyAsync();

        await using var connection = await OpenAsync(dataSource, async);
        await using var command = connection.CreateCommand();
        command.CommandText = "INSERT dbo.orders (id) VALUES (1)";
        await NonQueryAsync(command, async);
        command.CommandText = "SELECT @@SERVERNAME";
        for (var i = 0; i < 4; i++)
        {
            Assert.That(await ScalarAsync(command, async), Is.EqualTo("sql-primary"), "both secondaries hardened the write; neither redid its commit record (slot 3)");
            Assert.That(command.LastDecision?.Reason, Is.EqualTo(RoutingReason.ReadYourWrites));
        }

        // Redo on the second secondary applies the commit record: from its next probe on, it serves the reads.
        Replica2.Replication = Replica2.Replication! with { LastRedoneLsn = write };
        await dataSource.RefreshTopologyAsync();
        Assert.That(await ScalarAsync(command, async), Is.EqualTo("sql-replica-2"));
        Assert.That(command.LastDecision?.Reason, Is.EqualTo(RoutingReason.CaughtUpReplica));
        Assert.That(Ran(Replica1), Is.Empty, "a secondary whose redo is behind serves no read of this session");
    }

    /// <summary>
    /// A read waiting for a secondary polls its redo position (<see cref="SqlServerDialect.ReplayPositionQuery"/>) and is
    /// served there once redo reaches the write, without waiting for the monitor's next probe.
    /// </summary>
    [Test]
    public async Task A_waiting_read_polls_redo_and_is_served_once_it_reaches_the_write([Values] bool async)
    {
        var write = Lsn(52, 100, 4);
        Primary.Replication = new TdsReplicationState(write);
        Replica1.Replication = new TdsReplicationState(write, LastRedoneLsn: Lsn(52, 100, 1), LagSeconds: 0.1);
        Replica2.Replication = new TdsReplicationState(write, LastRedoneLsn: Lsn(52, 99, 8), LagSeconds: 0.1);
        Primary.OnText("INSERT dbo.orders (id) VALUES (2)", TdsReply.Affected(1));
        var dataSource = CreateDataSource(o =>
        {
            o.ReadYourWritesTimeout = TimeSpan.FromSeconds(10);
            o.ReadAfterWrite = ReadAfterWrite.WaitForReplica;
        });
        await dataSource.RefreshTopologyAsync();

        await using var connection = await OpenAsync(dataSource, async);
        await using var command = connection.CreateCommand();
        command.CommandText = "INSERT dbo.orders (id) VALUES (2)";
        await NonQueryAsync(command, async);
        var redo = Task.Run(async () =>
        {
            await Task.Delay(300);
            Replica1.Replication = Replica1.Replication! with { LastRedoneLsn = write };
            Replica2.Replication = Replica2.Replication! with { LastRedoneLsn = write };
        });
        command.CommandText = "SELECT @@SERVERNAME";
        Assert.That(await ScalarAsync(command, async), Does.StartWith("sql-replica-"));
        await redo;
        var polls = Replica1.Journal.Concat(Replica2.Journal).Count(r => !r.IsMonitor && r.Text == SqlServerDialect.Instance.Replication.ReplayPositionQuery);
        Assert.That(polls, Is.GreaterThanOrEqualTo(2), "the read polled redo's position until it reached the write");
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
        Assert.That(command.LastDecision?.Reason, Is.EqualTo(RoutingReason.ReadAfterWrite));
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

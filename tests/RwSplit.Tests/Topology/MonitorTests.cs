using System;
using System.Linq;
using System.Threading.Tasks;
using NUnit.Framework;
using RwSplit.Routing;
using RwSplit.TestSupport;
using RwSplit.Tests.Fakes;
using RwSplit.Topology;

namespace RwSplit.Tests.Topology;

/// <summary>
/// The topology monitor's logic over scripted probe answers: lag from positions and replay times, ejection and
/// re-admission, failover detection, and read-your-writes by position and by time window (the SQL Server fallback).
/// </summary>
public sealed class MonitorTests
{
    private FakeServer _primary = null!;
    private FakeServer _replica1 = null!;
    private FakeServer _replica2 = null!;

    [SetUp]
    public void SetUp()
    {
        _primary = FakeServer.Create("mon-primary");
        _replica1 = FakeServer.Create("mon-replica1");
        _replica2 = FakeServer.Create("mon-replica2");
        _primary.ProbeRow = new object?[] { false, 1000L, null, "cluster-a" };
        _replica1.ProbeRow = new object?[] { true, 1000L, 0.0, "cluster-a" };
        _replica2.ProbeRow = new object?[] { true, 1000L, 0.0, "cluster-a" };
    }

    private RwSplitDataSource Create(Action<RwSplitOptions>? configure = null)
    {
        var dataSource = CreateUnstarted(configure);
        dataSource.Monitor!.FirstRound.Wait(); // the monitor's own first round is done: from here rounds run only on request
        return dataSource;
    }

    private RwSplitDataSource CreateUnstarted(Action<RwSplitOptions>? configure) => RwSplitDataSource.Create(o =>
    {
        o.UseDialect(FakeDialect.Monitored);
        o.Primary = $"Server={_primary.Name}";
        o.Replicas.Add($"Server={_replica1.Name}");
        o.Replicas.Add($"Server={_replica2.Name}");
        o.HealthCheckInterval = TimeSpan.FromMinutes(10); // rounds run only when the test asks
        o.MaxReplicaLag = TimeSpan.FromSeconds(2);
        o.ReadmitAfterHealthyProbes = 3;
        o.ConsistencyTokenKeys.Add(SharedTokenKey);
        configure?.Invoke(o);
    });

    private static readonly byte[] SharedTokenKey = new byte[32];

    [Test]
    public async Task Lag_is_zero_when_caught_up_else_the_time_since_the_last_replayed_commit()
    {
        await using var dataSource = Create();
        _replica1.ProbeRow = new object?[] { true, 1000L, 50.0, "cluster-a" }; // idle: old commit, but nothing to replay
        _replica2.ProbeRow = new object?[] { true, 900L, 1.5, "cluster-a" };
        await dataSource.RefreshTopologyAsync();
        var topology = dataSource.GetTopology();
        Assert.That(topology[1].ReplicationLag, Is.EqualTo(TimeSpan.Zero));
        Assert.That(topology[1].PositionLag, Is.Zero);
        Assert.That(topology[2].ReplicationLag, Is.EqualTo(TimeSpan.FromSeconds(1.5)));
        Assert.That(topology[2].PositionLag, Is.EqualTo(100));
        Assert.That(topology.Skip(1).All(t => t.IsAvailable), Is.True);
        Assert.That(topology[0].ObservedRole, Is.EqualTo(EndpointRole.Primary));
        Assert.That(topology[0].Latency, Is.Not.Null);
    }

    [Test]
    public async Task Lagging_replica_is_ejected_and_readmitted_after_three_healthy_probes()
    {
        using var capture = new TelemetryCapture("mon-lagging");
        await using var dataSource = Create(o =>
        {
            o.Consistency = ReadConsistency.Eventual;
            o.Name = "mon-lagging";
            o.LoggerFactory = capture.LoggerFactory;
        });
        _replica2.ProbeRow = new object?[] { true, 500L, 5.0, "cluster-a" };
        await dataSource.RefreshTopologyAsync();
        Assert.That(dataSource.GetTopology()[2].IsAvailable, Is.False);
        var ejected = capture.Logged(2003).Single();
        Assert.That((ejected.Level, ejected.Message), Is.EqualTo((Microsoft.Extensions.Logging.LogLevel.Warning, $"Replica {_replica2.Name}/db ejected (Lagging, lag 5 s): no reads go to it until it passes the health checks again. ")));
        Assert.That(capture.Measured("rwsplit.replica.ejections").Sum(m => m.Value), Is.EqualTo(1));
        var lagging = dataSource.ReplicaAddresses[1];
        Assert.That(capture.Measured("rwsplit.replica.lag").Where(m => Equals(m.Tags[RwSplit.Diagnostics.TagNames.ServerAddress], lagging.Host) && Equals(m.Tags.TryGetValue(RwSplit.Diagnostics.TagNames.ServerPort, out var port) ? port : null, lagging.Port) && Equals(m.Tags.TryGetValue(RwSplit.Diagnostics.TagNames.DbNamespace, out var database) ? database : null, lagging.Database)).Select(m => m.Value), Is.EqualTo(new[] { 5.0 }), "host, port and database are tags of their own");
        Assert.That(capture.Measured("rwsplit.replica.available").Select(m => m.Value), Is.EquivalentTo(new[] { 1.0, 0.0 }), "replica 1 in rotation, replica 2 out");

        await using (var connection = await dataSource.OpenConnectionAsync())
        {
            for (var i = 0; i < 4; i++)
            {
                await using var fresh = await dataSource.OpenConnectionAsync();
                await using var command = fresh.CreateCommand();
                command.CommandText = "SELECT 1";
                Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo(_replica1.Name), "reads avoid the lagging replica");
            }
        }

        _replica2.ProbeRow = new object?[] { true, 1000L, 0.0, "cluster-a" };
        await dataSource.RefreshTopologyAsync();
        await dataSource.RefreshTopologyAsync();
        Assert.That(dataSource.GetTopology()[2].IsAvailable, Is.False, "two good probes are not enough");
        await dataSource.RefreshTopologyAsync();
        Assert.That(dataSource.GetTopology()[2].IsAvailable, Is.True, "the third re-admits");
        Assert.That(capture.Logged(2004).Single().Message, Is.EqualTo($"Replica {_replica2.Name}/db re-admitted after 3 healthy probes"));
    }

    [Test]
    public async Task Unreachable_replica_is_ejected_by_the_probe()
    {
        await using var dataSource = Create();
        _replica1.OpenFailure = new ReadOnlyViolationException();
        _replica1.ProbeRow = null; // the open probe connection fails too
        await dataSource.RefreshTopologyAsync();
        var status = dataSource.GetTopology()[1];
        Assert.That(status.IsAvailable, Is.False);
        Assert.That(status.IsReachable, Is.False);
        Assert.That(status.LastError, Does.Contain("read-only"));
    }

    [Test]
    public async Task Failover_is_detected_when_the_primary_is_gone_and_one_replica_reports_primary()
    {
        using var capture = new TelemetryCapture();
        await using var dataSource = Create(o => o.LoggerFactory = capture.LoggerFactory);
        await dataSource.RefreshTopologyAsync();
        Assert.That(dataSource.CurrentPrimaryAddress.Host, Is.EqualTo(_primary.Name));

        _primary.OpenFailure = new ReadOnlyViolationException();
        _primary.ProbeRow = null;
        _replica2.ProbeRow = new object?[] { false, 2000L, null, "cluster-a" };
        await dataSource.RefreshTopologyAsync();
        Assert.That(dataSource.CurrentPrimaryAddress.Host, Is.EqualTo(_replica2.Name));
        Assert.That(dataSource.GetTopology()[2].IsAvailable, Is.False, "the promoted replica takes no replica reads");
        var changed = capture.Logged(2005).Single();
        Assert.That((changed.Level, changed.Message), Is.EqualTo((Microsoft.Extensions.Logging.LogLevel.Warning, $"Primary changed from {_primary.Name}/db to {_replica2.Name}/db: writes go to the new primary; connections holding the old one fail with PrimaryChanged")));

        await using var connection = await dataSource.OpenConnectionAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "DELETE FROM t";
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo(_replica2.Name), "writes go to the new primary");
    }

    [Test]
    public async Task Two_servers_claiming_primary_do_not_trigger_a_failover()
    {
        using var capture = new TelemetryCapture();
        await using var dataSource = Create(o => o.LoggerFactory = capture.LoggerFactory);
        _primary.OpenFailure = new ReadOnlyViolationException();
        _primary.ProbeRow = null; // the probe's open connection fails too: the primary is gone
        _replica1.ProbeRow = new object?[] { false, 2000L, null, "cluster-a" };
        _replica2.ProbeRow = new object?[] { false, 2000L, null, "cluster-a" };
        await dataSource.RefreshTopologyAsync();
        Assert.That(dataSource.CurrentPrimaryAddress.Host, Is.EqualTo(_primary.Name));
        var ambiguous = capture.Logged(2006).Single();
        Assert.That(ambiguous.Level, Is.EqualTo(Microsoft.Extensions.Logging.LogLevel.Error));
        Assert.That(ambiguous.Message, Does.Contain(_replica1.Name).And.Contain(_replica2.Name).And.Contain("not failing over"));
        Assert.That(capture.Events.Select(e => e.Id.Id), Has.None.EqualTo(2005));
    }

    [Test]
    public async Task Read_your_writes_by_position_polls_a_replica_until_it_has_the_write()
    {
        await using var dataSource = Create(o =>
        {
            o.ReadYourWritesTimeout = TimeSpan.FromSeconds(1);
            o.ReadAfterWrite = ReadAfterWrite.WaitForReplica;
        });
        await dataSource.RefreshTopologyAsync();
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "INSERT INTO t VALUES (1)";
        await command.ExecuteScalarAsync();

        // The primary is at 1500 after the write; replica 1 has replayed it, replica 2 has not.
        _primary.Position = 1500;
        _replica1.Position = 1500;
        _replica2.Position = 1200;
        command.CommandText = "SELECT 1";
        var ranOn = await command.ExecuteScalarAsync();
        Assert.That(ranOn, Is.EqualTo(_replica1.Name).Or.EqualTo(_primary.Name));
        Assert.That(_primary.Journal.Any(c => c.Text == FakeDialect.WritePosition), Is.True, "the watermark came from the primary");
        Assert.That(ranOn, Is.Not.EqualTo(_replica2.Name), "never the replica behind the write");

        // A token carries the watermark.
        var token = ConsistencyToken.Parse((await connection.GetConsistencyTokenAsync())!);
        Assert.That(token.Position, Is.EqualTo(1500));
        Assert.That(token.IdentityHash, Is.EqualTo(ConsistencyToken.HashIdentity("cluster-a")));
    }

    [Test]
    public async Task A_token_exported_before_any_probe_learned_the_servers_identity_still_carries_it()
    {
        // The monitor's probes have not told the data source which cluster it is on (at start-up, or while the first
        // probe is still under way): the token must not go out without an identity, or any cluster would accept it.
        _primary.ProbeRow = new object?[] { false, 1000L, null, null };
        _replica1.ProbeRow = new object?[] { true, 1000L, 0.0, null };
        _replica2.ProbeRow = new object?[] { true, 1000L, 0.0, null };
        await using var dataSource = Create();
        _primary.ProbeRow = new object?[] { false, 1000L, null, "cluster-a" };
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "INSERT INTO t VALUES (1)";
        await command.ExecuteScalarAsync();

        var token = ConsistencyToken.Parse((await connection.GetConsistencyTokenAsync())!);
        Assert.That(token.IdentityHash, Is.EqualTo(ConsistencyToken.HashIdentity("cluster-a")));
        Assert.That(ConsistencyToken.Parse(connection.GetConsistencyToken()!).IdentityHash, Is.EqualTo(token.IdentityHash), "sync path");

        // Another cluster's data source refuses it.
        var other = FakeServer.Create("mon-other");
        other.ProbeRow = new object?[] { false, 1000L, null, "cluster-b" };
        await using var foreign = RwSplitDataSource.Create(o =>
        {
            o.UseDialect(FakeDialect.Monitored);
            o.Primary = $"Server={other.Name}";
            o.ConsistencyTokenKeys.Add(SharedTokenKey); // the same keys: the token's signature passes, its cluster does not
        });
        await foreign.RefreshTopologyAsync();
        await using var foreignConnection = await foreign.OpenConnectionAsync();
        var refused = Assert.Throws<RwSplitException>(() => foreignConnection.ApplyConsistencyToken(token.ToString()));
        Assert.That(refused!.Error, Is.EqualTo(RwSplitError.InvalidConsistencyToken));
        Assert.That(refused.Message, Does.Contain("another database cluster"));
    }

    [Test]
    public async Task A_token_asking_for_a_position_the_primary_never_reached_is_refused_once_and_dropped()
    {
        _primary.ProbeRow = new object?[] { false, 1000L, null, "cluster-a" };
        _replica1.ProbeRow = new object?[] { true, 1000L, 0.0, "cluster-a" };
        _replica2.ProbeRow = new object?[] { true, 1000L, 0.0, "cluster-a" };
        _primary.Position = 1000;
        await using var dataSource = Create(o => o.ReadYourWritesTimeout = TimeSpan.FromSeconds(2));
        await dataSource.RefreshTopologyAsync();
        // Signed with the data source's own key (a holder of the key, or a token of a restored cluster's earlier timeline).
        var future = dataSource.CreateToken(ConsistencyToken.HashIdentity("cluster-a"), 9_000_000, DateTimeOffset.UtcNow).ToString();

        await using var connection = await dataSource.OpenConnectionAsync();
        connection.ApplyConsistencyToken(future); // nothing to compare with without a round trip: checked by the first read
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT 1";
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var refused = Assert.ThrowsAsync<RwSplitException>(async () => await command.ExecuteScalarAsync());
        Assert.That(refused!.Error, Is.EqualTo(RwSplitError.InvalidConsistencyToken));
        Assert.That(refused.Message, Does.Contain("beyond the primary's current 1000"));
        Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(1)), "refused at once, not after waiting ReadYourWritesTimeout for a replica");
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo(_replica1.Name).Or.EqualTo(_replica2.Name), "dropped: the next read runs on a replica that has the primary's position");

        // A data-source floor of the same token: the first connection to read refuses it, and it is gone for the others.
        dataSource.ApplyConsistencyToken(future);
        await using (var first = await dataSource.OpenConnectionAsync())
        {
            await using var read = first.CreateCommand();
            read.CommandText = "SELECT 1";
            Assert.ThrowsAsync<RwSplitException>(async () => await read.ExecuteScalarAsync());
        }

        Assert.That(dataSource.FloorToken, Is.Null);
        await using var next = await dataSource.OpenConnectionAsync();
        await using var nextRead = next.CreateCommand();
        nextRead.CommandText = "SELECT 1";
        Assert.That(await nextRead.ExecuteScalarAsync(), Is.EqualTo(_replica1.Name).Or.EqualTo(_replica2.Name));

        // A genuine token (a position the primary has reached, beyond its last probe) is checked with the primary once,
        // then used as it is: the read waits for a replica that has replayed it.
        _primary.Position = 1200;
        var real = dataSource.CreateToken(ConsistencyToken.HashIdentity("cluster-a"), 1100, DateTimeOffset.UtcNow).ToString();
        await using var informed = await dataSource.OpenConnectionAsync();
        informed.ApplyConsistencyToken(real);
        await using var informedRead = informed.CreateCommand();
        informedRead.CommandText = "SELECT 1";
        _replica1.Position = 1100;
        _replica2.Position = 1100;
        var askedBefore = _primary.Journal.Count(c => c.Text == FakeDialect.WritePosition);
        Assert.That(await informedRead.ExecuteScalarAsync(), Is.EqualTo(_replica1.Name).Or.EqualTo(_replica2.Name), "accepted: a replica with the position serves it");
        Assert.That(_primary.Journal.Count(c => c.Text == FakeDialect.WritePosition) - askedBefore, Is.EqualTo(1), "the primary was asked once");
        Assert.That(await informedRead.ExecuteScalarAsync(), Is.EqualTo(_replica1.Name).Or.EqualTo(_replica2.Name));
        Assert.That(_primary.Journal.Count(c => c.Text == FakeDialect.WritePosition) - askedBefore, Is.EqualTo(1), "and not again");
    }

    [Test]
    public async Task A_read_after_a_write_runs_on_the_open_primary_without_asking_where_the_write_is([Values] bool async)
    {
        // Every replica has replayed far beyond the write: only a question to the primary could tell, and a read on the
        // primary connection the write left open costs less than that question.
        await using var dataSource = Create(o => o.ReadYourWritesTimeout = TimeSpan.FromSeconds(1));
        await dataSource.RefreshTopologyAsync();
        _primary.Position = 1500;
        _replica1.Position = 1500;
        _replica2.Position = 1500;
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "INSERT INTO t VALUES (1)";
        _ = async ? await command.ExecuteScalarAsync() : command.ExecuteScalar();
        command.CommandText = "SELECT 1";
        for (var i = 0; i < 3; i++)
        {
            Assert.That(async ? await command.ExecuteScalarAsync() : command.ExecuteScalar(), Is.EqualTo(_primary.Name));
            Assert.That(command.LastDecision, Is.EqualTo(RoutingDecision.ToPrimary(RoutingReason.ReadAfterWrite)));
        }

        Assert.That(_primary.Journal.Count(c => c.Text == FakeDialect.WritePosition), Is.Zero, "no position query");
        Assert.That(_replica1.Journal.Concat(_replica2.Journal).Count(c => c.Text == FakeDialect.ReplayPosition), Is.Zero, "no wait for a replica");

        // Exporting a token asks the position: the write is no longer pending. The replicas have replayed it, and the next
        // read goes to one, after asking the primary's position once more (it read the primary's newer data: monotonic reads).
        Assert.That(ConsistencyToken.Parse((async ? await connection.GetConsistencyTokenAsync() : connection.GetConsistencyToken())!).Position, Is.EqualTo(1500));
        _replica1.ProbeRow = new object?[] { true, 1500L, 0.0, "cluster-a" };
        _replica2.ProbeRow = new object?[] { true, 1500L, 0.0, "cluster-a" };
        await dataSource.RefreshTopologyAsync();
        Assert.That(async ? await command.ExecuteScalarAsync() : command.ExecuteScalar(), Is.EqualTo(_replica1.Name).Or.EqualTo(_replica2.Name));
        Assert.That(command.LastDecision?.Reason, Is.EqualTo(RoutingReason.CaughtUpReplica));
        Assert.That(_primary.Journal.Count(c => c.Text == FakeDialect.WritePosition), Is.EqualTo(2), "asked by the export and by the move to a replica");
    }

    /// <summary>
    /// The primary takes a read for its spare capacity (both replicas busy), but cannot be opened: the read moves to a
    /// replica instead of failing, and the primary takes no reads for <see cref="RwSplitOptions.ReplicaRetryDelay"/>.
    /// </summary>
    [Test]
    public async Task A_read_the_primary_took_for_its_capacity_moves_to_a_replica_when_the_primary_cannot_be_opened([Values] bool async)
    {
        using var capture = new TelemetryCapture();
        await using var dataSource = Create(o =>
        {
            o.Consistency = ReadConsistency.Eventual;
            o.LoggerFactory = capture.LoggerFactory;
        });
        foreach (var replica in dataSource.Replicas)
            replica.BeginCommand(); // a command in flight on each replica: the idle primary is the least busy
        try
        {
            await using (var probe = await dataSource.OpenConnectionAsync())
            {
                await using var read = probe.CreateCommand();
                read.CommandText = "SELECT 1";
                Assert.That(async ? await read.ExecuteScalarAsync() : read.ExecuteScalar(), Is.EqualTo(_primary.Name), "counter-check: the primary takes the read");
                Assert.That(read.LastDecision?.Reason, Is.EqualTo(RoutingReason.PrimaryCapacity));
            }

            _primary.OpenFailure = new ReadOnlyViolationException(); // every open of the primary fails from now on
            for (var i = 0; i < 3; i++)
            {
                await using var connection = await dataSource.OpenConnectionAsync();
                await using var command = connection.CreateCommand();
                command.CommandText = "SELECT 1";
                Assert.That(async ? await command.ExecuteScalarAsync() : command.ExecuteScalar(), Is.EqualTo(_replica1.Name).Or.EqualTo(_replica2.Name));
                Assert.That(command.LastDecision?.Target, Is.EqualTo(RouteTarget.Replica));
            }

            var skipped = capture.Logged(2009).Single(); // once: then the primary takes no reads for ReplicaRetryDelay
            Assert.That(skipped.Level, Is.EqualTo(Microsoft.Extensions.Logging.LogLevel.Warning));
            Assert.That(skipped.Message, Does.Contain(_primary.Name).And.Contain("moves to a replica"));
        }
        finally
        {
            foreach (var replica in dataSource.Replicas)
                replica.EndCommand();
        }
    }

    [Test]
    public async Task Read_your_writes_waits_then_falls_back_to_the_primary_when_no_replica_catches_up()
    {
        await using var dataSource = Create(o =>
        {
            o.ReadYourWritesTimeout = TimeSpan.FromMilliseconds(50);
            o.ReadAfterWrite = ReadAfterWrite.WaitForReplica;
        });
        await dataSource.RefreshTopologyAsync();
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "INSERT INTO t VALUES (1)";
        await command.ExecuteScalarAsync();
        _primary.Position = 5000;
        _replica1.Position = 1000;
        _replica2.Position = 1000;
        command.CommandText = "SELECT 1";
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo(_primary.Name));
        Assert.That(command.LastDecision?.Reason, Is.EqualTo(RoutingReason.ReadYourWrites));
        var polls = _replica1.Journal.Concat(_replica2.Journal).Count(c => c.Text == FakeDialect.ReplayPosition);
        Assert.That(polls, Is.GreaterThan(1), "it polled a replica while waiting");
    }

    [Test]
    public async Task Read_your_writes_by_time_window_when_positions_are_unknown()
    {
        // SQL Server without VIEW SERVER STATE: no positions, only the replicas' time lag.
        _primary.ProbeRow = new object?[] { false, null, null, null };
        _replica1.ProbeRow = new object?[] { true, null, 0.2, null };
        _replica2.ProbeRow = new object?[] { true, null, 30.0, null };
        _primary.Position = null;
        await using var dataSource = Create(o =>
        {
            o.MaxReplicaLag = TimeSpan.FromMinutes(5);
            o.ReadYourWritesTimeout = TimeSpan.Zero;
            o.ReadAfterWrite = ReadAfterWrite.WaitForReplica;
        });
        await dataSource.RefreshTopologyAsync();
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "INSERT INTO t VALUES (1)";
        await command.ExecuteScalarAsync();
        command.CommandText = "SELECT 1";
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo(_primary.Name), "no probe since the write: nothing proves a replica has it");

        await Task.Delay(300);
        await dataSource.RefreshTopologyAsync(); // replica 1's data is now newer than the write (lag 0.2 s < 0.3 s ago)
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo(_replica1.Name), "the replica whose lag is shorter than the time since the write");
    }

    [Test]
    public async Task Fallback_budget_throws_when_configured_and_no_replica_qualifies()
    {
        _replica1.ProbeRow = null;
        _replica1.OpenFailure = new ReadOnlyViolationException();
        _replica2.ProbeRow = null;
        _replica2.OpenFailure = new ReadOnlyViolationException();
        await using var dataSource = Create(o =>
        {
            o.FallbackReadLimit = 0;
            o.FallbackOverflow = FallbackOverflow.Throw;
            o.Consistency = ReadConsistency.Eventual;
        });
        await dataSource.RefreshTopologyAsync();
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT 1";
        var ex = Assert.ThrowsAsync<RwSplitException>(async () => await command.ExecuteScalarAsync());
        Assert.That(ex!.Error, Is.EqualTo(RwSplitError.FallbackLimitReached));
        Assert.That(ex.Message, Does.Contain("FallbackReadLimit"));
        Assert.That(_primary.Journal.Any(c => c.Text == "SELECT 1"), Is.False, "nothing reached the primary");

        command.CommandText = "DELETE FROM t";
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo(_primary.Name), "writes are not subject to the read budget");
    }

    [Test]
    public async Task Fallback_budget_waits_for_a_slot_then_fails_after_the_timeout()
    {
        _replica1.OpenFailure = new ReadOnlyViolationException();
        _replica2.OpenFailure = new ReadOnlyViolationException();
        using var capture = new TelemetryCapture("mon-fallback-budget");
        await using var dataSource = Create(o =>
        {
            o.FallbackReadLimit = 0;
            o.FallbackWaitTimeout = TimeSpan.FromMilliseconds(100);
            o.Consistency = ReadConsistency.Eventual;
            o.Name = "mon-fallback-budget";
        });
        await dataSource.RefreshTopologyAsync();
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT 1";
        var started = DateTime.UtcNow;
        var ex = Assert.ThrowsAsync<RwSplitException>(async () => await command.ExecuteScalarAsync());
        Assert.That(ex!.Error, Is.EqualTo(RwSplitError.FallbackLimitReached));
        Assert.That(DateTime.UtcNow - started, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(90)), "it waited for a slot first");
        Assert.That(capture.Measured("rwsplit.routing.fallback_rejections").Sum(m => m.Value), Is.EqualTo(1));
    }

    [Test]
    public async Task Reads_fall_back_to_the_primary_within_the_budget()
    {
        _replica1.OpenFailure = new ReadOnlyViolationException();
        _replica2.OpenFailure = new ReadOnlyViolationException();
        using var capture = new TelemetryCapture("mon-fallback");
        await using var dataSource = Create(o =>
        {
            o.Consistency = ReadConsistency.Eventual;
            o.Name = "mon-fallback";
            o.LoggerFactory = capture.LoggerFactory;
        });
        await dataSource.RefreshTopologyAsync();
        for (var i = 0; i < 40; i++) // more than the default limit of 32, sequentially: slots are returned
        {
            await using var connection = await dataSource.OpenConnectionAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = "SELECT 1";
            Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo(_primary.Name));
            Assert.That(command.LastDecision?.Reason, Is.EqualTo(RoutingReason.NoReplicaAvailable));
        }

        Assert.That(capture.Events.Select(e => e.Id.Id), Has.None.EqualTo(2000), "the monitor had ejected both replicas: no read tried to open one");
    }

    [Test]
    public async Task A_read_whose_replica_connection_broke_is_retried_elsewhere()
    {
        using var capture = new TelemetryCapture("mon-read-retry");
        await using var dataSource = Create(o =>
        {
            o.Consistency = ReadConsistency.Eventual;
            o.Name = "mon-read-retry";
            o.LoggerFactory = capture.LoggerFactory;
        });
        await dataSource.RefreshTopologyAsync();
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT 1";
        var first = (string)(await command.ExecuteScalarAsync())!;
        var broken = first == _replica1.Name ? _replica1 : _replica2;
        var other = first == _replica1.Name ? _replica2 : _replica1;

        ((FakeConnection)connection.CurrentReplicaConnection!).Close(); // the server went away under the session
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo(other.Name), "retried on the other replica");
        Assert.That(dataSource.GetTopology()[broken == _replica1 ? 1 : 2].IsAvailable, Is.False, "the failed replica is ejected at once");
        Assert.That(capture.Logged(2008).Single().Message, Is.EqualTo($"A read on replica {broken.Name}/db failed before returning rows; retrying it on another server"));
        Assert.That(capture.Measured("rwsplit.routing.read_retries").Sum(m => m.Value), Is.EqualTo(1));
    }

    [Test]
    public async Task Bounded_staleness_reads_a_fresh_enough_replica_even_after_a_write()
    {
        _replica1.ProbeRow = new object?[] { true, 900L, 0.5, "cluster-a" };
        _replica2.ProbeRow = new object?[] { true, 800L, 5.0, "cluster-a" };
        await using var dataSource = Create(o =>
        {
            o.MaxReplicaLag = TimeSpan.FromSeconds(30);
            o.ReadYourWritesTimeout = TimeSpan.Zero;
        });
        await dataSource.RefreshTopologyAsync();
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "INSERT INTO t VALUES (1)";
        await command.ExecuteScalarAsync();
        _primary.Position = 1000;

        command.CommandText = "SELECT 1";
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo(_primary.Name), "read-your-writes: no replica has the write");

        command.MaxStaleness = TimeSpan.FromSeconds(1);
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo(_replica1.Name), "1 s of staleness allowed: the replica 0.5 s behind");
        command.MaxStaleness = TimeSpan.FromMilliseconds(100);
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo(_primary.Name), "no replica is within 100 ms");
        command.MaxStaleness = null;

        using (RwSplitScope.AllowStaleness(TimeSpan.FromSeconds(10)))
        {
            await using var fresh = await dataSource.OpenConnectionAsync();
            fresh.Consistency = ReadConsistency.Strong;
            await using var read = fresh.CreateCommand();
            read.CommandText = "SELECT 1";
            Assert.That(await read.ExecuteScalarAsync(), Is.Not.EqualTo(_primary.Name), "the scope relaxes even Strong for reads");
        }

        Assert.That(RwSplitScope.MaxStaleness, Is.Null);
        Assert.Throws<ArgumentOutOfRangeException>(() => command.MaxStaleness = TimeSpan.Zero);
    }
}

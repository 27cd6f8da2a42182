using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Npgsql;
using NUnit.Framework;
using RwSplit.PgCluster;
using RwSplit.PostgreSql;
using RwSplit.Routing;

namespace RwSplit.IntegrationTests.PostgreSql;

/// <summary>
/// Replica health, lag and read-your-writes against real servers with real faults: replay delayed with
/// <c>recovery_min_apply_delay</c>, paused with <c>pg_wal_replay_pause()</c>, a replica killed with
/// <c>pg_ctl stop -m immediate</c>, and a failover by promotion. These tests break servers, so they run on their own
/// cluster (ports 25440–25442), one at a time, the destructive failover last.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed partial class HealthAndConsistencyTests
{
    private const int BasePort = 25440;
    private LocalPgCluster _cluster = null!;
    private int _primaryPort;
    private int[] _replicaPorts = null!;

    [OneTimeSetUp]
    public async Task StartOwnClusterAsync()
    {
        if (Environment.GetEnvironmentVariable("RWSPLIT_PG_PRIMARY") is { Length: > 0 })
            Assert.Ignore("Fault tests need the local cluster (they stop, pause and promote servers); RWSPLIT_PG_PRIMARY names external servers.");
        _cluster = await LocalPgCluster.StartAsync(new LocalPgClusterOptions { BasePort = BasePort, StartSecondPrimary = false });
        _primaryPort = _cluster.Primary.Port;
        _replicaPorts = _cluster.Replicas.Select(r => r.Port).ToArray();
        await using var connection = new NpgsqlConnection(_cluster.PrimaryConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            "DROP TABLE IF EXISTS rows; CREATE TABLE rows (id bigint PRIMARY KEY, worker int NOT NULL, note text);", connection);
        await command.ExecuteNonQueryAsync();
        await _cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(30));
    }

    [OneTimeTearDown]
    public async Task StopOwnClusterAsync()
    {
        if (_cluster is not null)
            await _cluster.DisposeAsync();
    }

    [TearDown]
    public async Task RestoreReplicasAsync()
    {
        if (_cluster is null || TestContext.CurrentContext.Test.Name.Contains("Failover", StringComparison.Ordinal))
            return;
        foreach (var replica in _cluster.Replicas)
        {
            await replica.StartAsync();
            await replica.ResetConfigAsync("recovery_min_apply_delay");
            await replica.ResumeReplayAsync();
        }

        await _cluster.Primary.ResetConfigAsync("synchronous_commit");

        await _cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(30));
    }

    private RwSplitDataSource Create(Action<RwSplitOptions>? configure = null, string app = "rwsplit-health")
        => RwSplitDataSource.Create(o =>
        {
            o.UseNpgsql();
            o.Primary = TestDataSources.WithApplicationName(_cluster.PrimaryConnectionString, app);
            foreach (var replica in _cluster.ReplicaConnectionStrings)
                o.Replicas.Add(TestDataSources.WithApplicationName(replica, app));
            o.HealthCheckInterval = TimeSpan.FromMilliseconds(200);
            o.ConsistencyTokenKeys.Add(TokenKey); // as services that exchange tokens are configured
            configure?.Invoke(o);
        });

    private static readonly byte[] TokenKey = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);

    private static async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        var stopwatch = Stopwatch.StartNew();
        while (!condition())
        {
            if (stopwatch.Elapsed > timeout)
                Assert.Fail($"Timed out after {timeout.TotalSeconds} s waiting until {what}.");
            await Task.Delay(50);
        }
    }

    private static long _nextId = DateTime.UtcNow.Ticks / 1000;

    [Test]
    [Order(1)]
    [CancelAfter(120_000)]
    public async Task Read_your_writes_never_reads_stale_with_a_delayed_replica_and_still_uses_the_caught_up_one()
    {
        var delayed = _cluster.Replicas[0];
        await delayed.SetConfigAsync("recovery_min_apply_delay", "3s");
        await using var dataSource = Create(o =>
        {
            o.MaxReplicaLag = TimeSpan.FromSeconds(60); // keep the delayed replica in rotation: only read-your-writes may keep reads off it
            o.ReadYourWritesTimeout = TimeSpan.FromMilliseconds(500);
            o.ReadAfterWrite = ReadAfterWrite.WaitForReplica; // reads after writes look for a replica (the default reads the open primary)
        });
        await dataSource.RefreshTopologyAsync();

        var stale = 0;
        var onReplica = new ConcurrentDictionary<int, int>();
        var reads = 0;
        var workers = Enumerable.Range(0, 8).Select(worker => Task.Run(async () =>
        {
            for (var i = 0; i < 25; i++)
            {
                var id = Interlocked.Increment(ref _nextId);
                await using var connection = await dataSource.OpenConnectionAsync();
                await using var insert = connection.CreateCommand();
                insert.CommandText = "INSERT INTO rows (id, worker) VALUES (@id, @worker)";
                insert.Parameters.Add(new NpgsqlParameter("id", id));
                insert.Parameters.Add(new NpgsqlParameter("worker", worker));
                await insert.ExecuteNonQueryAsync();

                await using var read = connection.CreateCommand();
                read.CommandText = "SELECT inet_server_port() FROM rows WHERE id = @id";
                read.Parameters.Add(new NpgsqlParameter("id", id));
                var port = await read.ExecuteScalarAsync();
                Interlocked.Increment(ref reads);
                if (port is null)
                    Interlocked.Increment(ref stale);
                else
                    onReplica.AddOrUpdate((int)port, 1, (_, n) => n + 1);
            }
        })).ToArray();
        await Task.WhenAll(workers);

        TestContext.Out.WriteLine($"reads {reads}, stale {stale}, by port: {string.Join(", ", onReplica.Select(p => $"{p.Key}={p.Value}"))}");
        Assert.That(stale, Is.Zero, "no read missed its own write");
        Assert.That(onReplica.GetValueOrDefault(_replicaPorts[0]), Is.Zero, "the delayed replica never served a read-after-write");
        Assert.That(onReplica.GetValueOrDefault(_replicaPorts[1]), Is.GreaterThan(0), "the caught-up replica still served reads");
    }

    [Test]
    [Order(2)]
    [CancelAfter(120_000)]
    public async Task A_replica_killed_mid_workload_fails_no_read_is_ejected_and_readmitted_after_restart()
    {
        var victim = _cluster.Replicas[0];
        await using var dataSource = Create(o =>
        {
            o.Consistency = ReadConsistency.Eventual;
            o.ReadmitAfterHealthyProbes = 3;
        });
        await dataSource.RefreshTopologyAsync();

        var failures = new ConcurrentQueue<Exception>();
        var byPort = new ConcurrentDictionary<int, int>();
        using var stop = new CancellationTokenSource();
        var workers = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await using var connection = await dataSource.OpenConnectionAsync();
                    await using var command = connection.CreateCommand();
                    command.CommandText = "SELECT inet_server_port() FROM rows LIMIT 1";
                    var port = Convert.ToInt32(await command.ExecuteScalarAsync() ?? 0);
                    byPort.AddOrUpdate(port, 1, (_, n) => n + 1);
                }
#pragma warning disable CA1031 // every failure is a test failure, collected
                catch (Exception ex)
#pragma warning restore CA1031
                {
                    failures.Enqueue(ex);
                }
            }
        })).ToArray();

        await Task.Delay(700);
        await victim.StopAsync(immediate: true);
        await WaitUntilAsync(() => !dataSource.GetTopology()[1].IsAvailable, TimeSpan.FromSeconds(10), "the stopped replica is ejected");
        var servedWhileDown = byPort.GetValueOrDefault(_replicaPorts[0]);
        await Task.Delay(700);
        Assert.That(byPort.GetValueOrDefault(_replicaPorts[0]), Is.EqualTo(servedWhileDown), "no read reached the stopped replica once ejected");

        await victim.StartAsync();
        await _cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(30));
        await WaitUntilAsync(() => dataSource.GetTopology()[1].IsAvailable, TimeSpan.FromSeconds(15), "the restarted replica is re-admitted");
        Assert.That(dataSource.GetTopology()[1].ConsecutiveHealthyProbes, Is.GreaterThanOrEqualTo(3), "re-admitted only after 3 healthy probes");
        var before = byPort.GetValueOrDefault(_replicaPorts[0]);
        await Task.Delay(1000);
        await stop.CancelAsync();
        await Task.WhenAll(workers);

        TestContext.Out.WriteLine($"reads by port: {string.Join(", ", byPort.Select(p => $"{p.Key}={p.Value}"))}; failures {failures.Count}");
        Assert.That(failures, Is.Empty, () => "reads failed: " + string.Join(" | ", failures.Take(3).Select(f => f.GetType().Name + ": " + f.Message)));
        Assert.That(byPort.GetValueOrDefault(_replicaPorts[0]), Is.GreaterThan(before), "the re-admitted replica serves reads again");
        Assert.That(byPort.GetValueOrDefault(_primaryPort) + byPort.GetValueOrDefault(_replicaPorts[1]), Is.GreaterThan(0));
    }

    [Test]
    [Order(3)]
    [CancelAfter(120_000)]
    public async Task Paused_replay_grows_lag_ejects_past_MaxReplicaLag_and_the_monitor_agrees_with_the_server()
    {
        var paused = _cluster.Replicas[1];
        await using var dataSource = Create(o =>
        {
            o.Consistency = ReadConsistency.Eventual;
            o.MaxReplicaLag = TimeSpan.FromSeconds(1);
        });
        await dataSource.RefreshTopologyAsync();
        Assert.That(dataSource.GetTopology()[2].IsAvailable, Is.True);

        using var stop = new CancellationTokenSource();
        var writer = Task.Run(async () =>
        {
            await using var connection = new NpgsqlConnection(_cluster.PrimaryConnectionString);
            await connection.OpenAsync();
            while (!stop.IsCancellationRequested)
            {
                await using var command = new NpgsqlCommand("INSERT INTO rows (id, worker) VALUES (@id, -1)", connection);
                command.Parameters.AddWithValue("id", Interlocked.Increment(ref _nextId));
                await command.ExecuteNonQueryAsync();
                await Task.Delay(20);
            }
        });

        await paused.PauseReplayAsync();
        await WaitUntilAsync(() => !dataSource.GetTopology()[2].IsAvailable, TimeSpan.FromSeconds(10), "the paused replica is ejected for lag");

        // Let the lag grow past 1 s: the ejection may come from the first probe after the pause already (the last
        // replayed transaction can be older than the pause), so a fixed delay after it does not say how far behind it is.
        var grown = System.Diagnostics.Stopwatch.StartNew();
        do
        {
            await Task.Delay(200);
            await dataSource.RefreshTopologyAsync();
        }
        while (dataSource.GetTopology()[2].ReplicationLag is not { TotalSeconds: > 1.2 } && grown.Elapsed < TimeSpan.FromSeconds(10));

        // The monitor's lag and the server's own, measured back to back.
        await dataSource.RefreshTopologyAsync();
        var monitored = dataSource.GetTopology()[2].ReplicationLag!.Value.TotalSeconds;
        var server = await paused.ScalarAsync<double>("SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8");
        TestContext.Out.WriteLine($"monitor lag {monitored:0.000} s, server lag {server:0.000} s, position lag {dataSource.GetTopology()[2].PositionLag} bytes");
        Assert.That(monitored, Is.GreaterThan(1.0));
        Assert.That(monitored, Is.EqualTo(server).Within(0.3), "the monitor reports the lag the server reports");
        Assert.That(dataSource.GetTopology()[2].PositionLag, Is.GreaterThan(0));

        for (var i = 0; i < 20; i++)
        {
            await using var connection = await dataSource.OpenConnectionAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = "SELECT inet_server_port()";
            Assert.That(await command.ExecuteScalarAsync(), Is.Not.EqualTo(_replicaPorts[1]), "no read goes to the lagging replica");
        }

        await paused.ResumeReplayAsync();
        await WaitUntilAsync(() => dataSource.GetTopology()[2].IsAvailable, TimeSpan.FromSeconds(15), "the replica is re-admitted after catching up");
        await stop.CancelAsync();
        await writer;
        Assert.That(dataSource.GetTopology()[2].ReplicationLag!.Value.TotalSeconds, Is.LessThan(1.0));
    }

    [Test]
    [Order(4)]
    [CancelAfter(120_000)]
    public async Task A_token_exported_by_one_data_source_makes_a_read_through_another_consistent()
    {
        // Both replicas behind: replica 1 applies WAL 2 s late, replica 2 is paused.
        await _cluster.Replicas[0].SetConfigAsync("recovery_min_apply_delay", "2s");
        await _cluster.Replicas[1].PauseReplayAsync();
        await using var writerSource = Create(app: "rwsplit-token-writer");
        await using var readerSource = Create(o => o.ReadYourWritesTimeout = TimeSpan.FromSeconds(5), app: "rwsplit-token-reader");
        await readerSource.RefreshTopologyAsync();

        var id = Interlocked.Increment(ref _nextId);
        string token;
        await using (var writer = await writerSource.OpenConnectionAsync())
        {
            await using var insert = writer.CreateCommand();
            insert.CommandText = $"INSERT INTO rows (id, worker, note) VALUES ({id}, 0, 'token')";
            await insert.ExecuteNonQueryAsync();
            token = (await writer.GetConsistencyTokenAsync())!;
        }

        Assert.That(token, Does.StartWith("rws2."));
        var sql = $"SELECT inet_server_port() FROM rows WHERE id = {id}";

        // Without the token, another service's read may be stale: it runs on a replica that has not replayed the write.
        await using (var blind = await readerSource.OpenConnectionAsync())
        {
            await using var read = blind.CreateCommand();
            read.CommandText = sql;
            Assert.That(await read.ExecuteScalarAsync(), Is.Null, "counter-check: without the token the read is stale");
        }

        // With it, the read waits for a replica to catch up (replica 1, after its 2 s delay) or uses the primary.
        await using (var informed = await readerSource.OpenConnectionAsync())
        {
            informed.ApplyConsistencyToken(token);
            await using var read = informed.CreateCommand();
            read.CommandText = sql;
            var port = await read.ExecuteScalarAsync();
            Assert.That(port, Is.Not.Null, "with the token, the read sees the write");
            TestContext.Out.WriteLine($"read with token ran on {port} ({read.LastDecision})");
            Assert.That(port, Is.Not.EqualTo(_replicaPorts[1]), "never the paused replica");
        }

        // A data-source-wide floor works the same for every new connection.
        readerSource.ApplyConsistencyToken(token);
        await using (var floor = await readerSource.OpenConnectionAsync())
        {
            await using var read = floor.CreateCommand();
            read.CommandText = sql;
            Assert.That(await read.ExecuteScalarAsync(), Is.Not.Null);
        }

        // Garbled and foreign tokens are refused, never silently ignored.
        await using var other = await readerSource.OpenConnectionAsync();
        var garbled = Assert.Throws<RwSplitException>(() => other.ApplyConsistencyToken(token[..^3] + "AAA"));
        Assert.That(garbled!.Error, Is.EqualTo(RwSplitError.InvalidConsistencyToken));
        await using var unkeyed = Create(o => o.ConsistencyTokenKeys.Clear(), app: "rwsplit-token-unkeyed");
        await using var unkeyedConnection = await unkeyed.OpenConnectionAsync();
        var unsigned = Assert.Throws<RwSplitException>(() => unkeyedConnection.ApplyConsistencyToken(token));
        Assert.That(unsigned!.Message, Does.Contain("signed with a key"), "a data source without the services' key refuses their tokens");
        await using var mainCluster = RwSplitDataSource.Create(o =>
        {
            o.UseNpgsql();
            o.Primary = ClusterSetup.Cluster.PrimaryConnectionString;
            o.ConsistencyTokenKeys.Add(TokenKey);
        });
        await mainCluster.RefreshTopologyAsync();
        await using var foreignConnection = await mainCluster.OpenConnectionAsync();
        var foreign = Assert.Throws<RwSplitException>(() => foreignConnection.ApplyConsistencyToken(token));
        Assert.That(foreign!.Message, Does.Contain("another database cluster"));
    }

    /// <summary>How a write-then-read pair commits its write.</summary>
    public enum CommitSetting
    {
        /// <summary>The primary's <c>synchronous_commit</c> is <c>off</c> for every session (ALTER SYSTEM).</summary>
        ServerOff,

        /// <summary>The primary's <c>synchronous_commit</c> is <c>local</c>.</summary>
        ServerLocal,

        /// <summary>The default, <c>on</c>.</summary>
        ServerOn,

        /// <summary>A transaction with <c>SET LOCAL synchronous_commit = off</c> (server default <c>on</c>).</summary>
        SetLocalOff,

        /// <summary>The session sets <c>synchronous_commit = off</c> through RwSplit (replayed session state).</summary>
        SessionOff,
    }

    /// <summary>
    /// Defect: the write position was <c>pg_current_wal_lsn()</c> (WAL written), which precedes an asynchronous commit's
    /// record while it sits in WAL buffers: a replica that had replayed "up to the position" had not replayed the commit,
    /// and 49 of 240 reads were stale. The position is now the WAL insert position.
    /// </summary>
    [Test]
    [Order(5)]
    [CancelAfter(120_000)]
    public async Task Read_your_writes_holds_under_every_synchronous_commit_setting_and_replicas_serve_once_caught_up([Values] CommitSetting setting, [Values] ReadAfterWrite mode)
    {
        if (setting is CommitSetting.ServerOff or CommitSetting.ServerLocal)
            await _cluster.Primary.SetConfigAsync("synchronous_commit", setting == CommitSetting.ServerOff ? "off" : "local");
        foreach (var replica in _cluster.Replicas)
            await replica.SetConfigAsync("recovery_min_apply_delay", "300ms");
        await using var dataSource = Create(o =>
        {
            o.MaxReplicaLag = TimeSpan.FromSeconds(60); // only read-your-writes keeps a read off a replica
            o.ReadYourWritesTimeout = TimeSpan.FromSeconds(3); // longer than the delay: reads wait for a replica
            o.ReadAfterWrite = mode;
        }, app: "rwsplit-async-commit");
        await dataSource.RefreshTopologyAsync();
        await using (var check = await dataSource.OpenConnectionAsync())
        {
            await using var show = check.CreateCommand();
            show.CommandText = "SHOW synchronous_commit";
            show.Target = RouteTarget.Primary;
            TestContext.Out.WriteLine($"primary synchronous_commit = {await show.ExecuteScalarAsync()}");
        }

        var stale = 0;
        var reads = 0;
        var onReplica = 0;
        var workers = Enumerable.Range(0, 6).Select(worker => Task.Run(async () =>
        {
            await using var connection = await dataSource.OpenConnectionAsync();
            if (setting == CommitSetting.SessionOff)
            {
                await using var set = connection.CreateCommand();
                set.CommandText = "SET synchronous_commit = off";
                await set.ExecuteNonQueryAsync();
            }

            for (var i = 0; i < 20; i++)
            {
                var id = Interlocked.Increment(ref _nextId);
                if (setting == CommitSetting.SetLocalOff)
                {
                    await using var transaction = await connection.BeginTransactionAsync();
                    await using var local = connection.CreateCommand();
                    local.CommandText = $"SET LOCAL synchronous_commit = off; INSERT INTO rows (id, worker) VALUES ({id}, {worker})";
                    await local.ExecuteNonQueryAsync();
                    await transaction.CommitAsync();
                }
                else
                {
                    await using var insert = connection.CreateCommand();
                    insert.CommandText = $"INSERT INTO rows (id, worker) VALUES ({id}, {worker})";
                    await insert.ExecuteNonQueryAsync();
                }

                await using var read = connection.CreateCommand();
                read.CommandText = $"SELECT inet_server_port() FROM rows WHERE id = {id}";
                var port = await read.ExecuteScalarAsync();
                Interlocked.Increment(ref reads);
                if (port is null)
                    Interlocked.Increment(ref stale);
                else if ((int)port != _primaryPort)
                    Interlocked.Increment(ref onReplica);
            }
        })).ToArray();
        await Task.WhenAll(workers);

        TestContext.Out.WriteLine($"{setting}, {mode}: reads {reads}, stale {stale}, served by a replica {onReplica}");
        Assert.That(stale, Is.Zero, "no read missed its own write");
        if (mode == ReadAfterWrite.WaitForReplica)
            Assert.That(onReplica, Is.GreaterThan(reads / 2), "replicas still serve the reads once they have replayed the write");
        else
            Assert.That(onReplica, Is.Zero, "each read follows its session's write on the open primary connection");
    }

    [Test]
    [Order(99)]
    [CancelAfter(120_000)]
    public async Task Failover_writes_go_to_the_promoted_replica_and_old_connections_fail_clearly()
    {
        await using var dataSource = Create();
        await dataSource.RefreshTopologyAsync();
        await using var old = await dataSource.OpenConnectionAsync();
        await using (var write = old.CreateCommand())
        {
            write.CommandText = "INSERT INTO rows (id, worker) VALUES (@id, 0) RETURNING inet_server_port()";
            write.Parameters.Add(new NpgsqlParameter("id", Interlocked.Increment(ref _nextId)));
            Assert.That(await write.ExecuteScalarAsync(), Is.EqualTo(_primaryPort));
        }

        await _cluster.Primary.StopAsync(immediate: true);
        await _cluster.Replicas[0].PromoteAsync();
        await WaitUntilAsync(() => dataSource.CurrentPrimaryAddress.Port == _replicaPorts[0], TimeSpan.FromSeconds(15), "the monitor observes the promotion");

        await using (var fresh = await dataSource.OpenConnectionAsync())
        {
            await using var write = fresh.CreateCommand();
            write.CommandText = "INSERT INTO rows (id, worker) VALUES (@id, 0) RETURNING inet_server_port()";
            write.Parameters.Add(new NpgsqlParameter("id", Interlocked.Increment(ref _nextId)));
            Assert.That(await write.ExecuteScalarAsync(), Is.EqualTo(_replicaPorts[0]), "writes go to the new primary");
        }

        await using (var again = old.CreateCommand())
        {
            again.CommandText = "INSERT INTO rows (id, worker) VALUES (@id, 0)";
            again.Parameters.Add(new NpgsqlParameter("id", Interlocked.Increment(ref _nextId)));
            var ex = Assert.ThrowsAsync<RwSplitException>(async () => await again.ExecuteNonQueryAsync());
            Assert.That(ex!.Error, Is.EqualTo(RwSplitError.PrimaryChanged));
            Assert.That(ex.Message, Does.Contain(_primaryPort.ToString(System.Globalization.CultureInfo.InvariantCulture)).And.Contain("reopen"));
        }

        var topology = dataSource.GetTopology();
        Assert.That(topology[1].ObservedRole, Is.EqualTo(Topology.EndpointRole.Primary));
        Assert.That(topology[1].IsAvailable, Is.False, "the promoted server no longer takes replica reads");
    }
}

using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;
using NUnit.Framework;
using RwSplit.PgCluster;
using RwSplit.PostgreSql;
using RwSplit.TestSupport;

namespace RwSplit.OperationsTests.HealthChecks;

/// <summary>
/// The health check through dependency injection and <see cref="HealthCheckService"/> on real PostgreSQL: a primary and
/// two streaming replicas on ports 25480–25482 (this fixture's own cluster), a 200 ms monitor interval and a 1 s lag limit.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class HealthCheckServerTests
{
    /// <summary>Added to every connection string RwSplit gets (the servers trust local connections and never ask for it), to check it never leaks.</summary>
    private const string Password = "hc-Integration-Secret-42";

    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private LocalPgCluster? _cluster;

    private LocalPgCluster Cluster => _cluster ?? throw new InvalidOperationException("The PostgreSQL cluster was not started.");

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _cluster = await TestClusters.StartOrIgnoreAsync(new LocalPgClusterOptions { BasePort = 25480, ReplicaCount = 2, StartSecondPrimary = false });

        await using var primary = new NpgsqlConnection(Cluster.PrimaryConnectionString);
        await primary.OpenAsync();
        await using var command = new NpgsqlCommand("DROP TABLE IF EXISTS health_writes; CREATE TABLE health_writes (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())", primary);
        await command.ExecuteNonQueryAsync();
        await Cluster.WaitForReplicasToCatchUpAsync(Patience);
    }

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        if (_cluster is not null)
            await _cluster.DisposeAsync();
    }

    private static string WithPassword(string connectionString) => connectionString + ";Password=" + Password;

    private void Configure(RwSplitOptions o, TimeSpan? interval = null, IEnumerable<string>? replicas = null)
    {
        o.UseNpgsql();
        o.Primary = WithPassword(Cluster.PrimaryConnectionString);
        foreach (var replica in replicas ?? Cluster.ReplicaConnectionStrings)
            o.Replicas.Add(WithPassword(replica));
        o.HealthCheckInterval = interval ?? TimeSpan.FromMilliseconds(200);
        o.MaxReplicaLag = TimeSpan.FromSeconds(1);
        o.ReadmitAfterHealthyProbes = 2;
        o.DistributedTransactions = false;
    }

    private HealthHarness Harness(Action<IHealthChecksBuilder>? checks = null, TimeSpan? interval = null)
        => new(s =>
        {
            s.AddReadWriteSplit(o => Configure(o, interval));
            var builder = s.AddHealthChecks();
            if (checks is null)
                builder.AddRwSplit();
            else
                checks(builder);
        });

    private static void AssertNoSecret(HealthReportEntry entry, RwSplitDataSource dataSource)
    {
        var json = HealthHarness.Json(entry);
        Assert.That(json, Does.Not.Contain(Password));
        Assert.That(json, Does.Not.Contain("Username=").And.Not.Contain("Host=").And.Not.Contain("Password").IgnoreCase);
        foreach (var endpoint in dataSource.GetHealth().Endpoints)
        {
            if (endpoint.LastError is { Length: > 0 } raw)
                Assert.That(json, Does.Not.Contain(raw), "a provider's raw error text is never published");
        }
    }

    [Test]
    [Order(1)]
    public async Task Healthy_then_Degraded_for_a_stopped_and_a_lagging_replica_then_Unhealthy_without_primary_and_back()
    {
        await using var harness = Harness();
        var dataSource = harness.Services.GetRequiredService<RwSplitDataSource>();
        var replica0 = dataSource.ReplicaAddresses[0].ToString();
        var replica1 = dataSource.ReplicaAddresses[1].ToString();

        var healthy = await harness.WaitForStatusAsync("rwsplit", HealthStatus.Healthy, Patience);
        Assert.Multiple(() =>
        {
            Assert.That(healthy.Description, Does.Contain("writable, every replica serving reads"));
            Assert.That(HealthHarness.Endpoint(healthy, "primary")["observedRole"], Is.EqualTo("Primary"));
            Assert.That(HealthHarness.Endpoint(healthy, "replica1")["available"], Is.True);
            Assert.That(HealthHarness.Endpoint(healthy, "replica1")["lagSeconds"], Is.EqualTo(0.0));
            Assert.That(HealthHarness.Endpoint(healthy, "replica1").ContainsKey("latencyMs"), Is.True);
            Assert.That((long)healthy.Data["completedRounds"], Is.GreaterThan(0));
        });

        // A replica stopped: Degraded, naming it and the kind of failure.
        await Cluster.Replicas[1].StopAsync();
        var stopped = await harness.WaitForStatusAsync("rwsplit", HealthStatus.Degraded, Patience, $"replica {replica1} is ejected: unreachable (");
        Assert.Multiple(() =>
        {
            Assert.That(HealthHarness.Endpoint(stopped, "replica1")["available"], Is.False);
            Assert.That(HealthHarness.Endpoint(stopped, "replica1")["reachable"], Is.False);
            Assert.That(HealthHarness.Endpoint(stopped, "replica1")["lastErrorKind"], Is.Not.Null);
            Assert.That(HealthHarness.Endpoint(stopped, "replica0")["available"], Is.True);
            AssertNoSecret(stopped, dataSource);
        });
        await Cluster.Replicas[1].StartAsync();
        await harness.WaitForStatusAsync("rwsplit", HealthStatus.Healthy, Patience);

        // A replica's replay paused while writes go on: Degraded once its lag passes MaxReplicaLag (1 s).
        await Cluster.Replicas[0].PauseReplayAsync();
        using (var writes = new CancellationTokenSource())
        {
            var writer = WriteUntilAsync(writes.Token);
            try
            {
                var lagging = await harness.WaitForStatusAsync("rwsplit", HealthStatus.Degraded, Patience, $"replica {replica0} is ejected: it lags");
                var entry = HealthHarness.Endpoint(lagging, "replica0");
                Assert.Multiple(() =>
                {
                    Assert.That((double)entry["lagSeconds"], Is.GreaterThan(1.0));
                    Assert.That((long)entry["positionLag"], Is.GreaterThan(0));
                    Assert.That(entry["available"], Is.False);
                    Assert.That(entry["reachable"], Is.True);
                    Assert.That(HealthHarness.Endpoint(lagging, "replica1")["available"], Is.True);
                });
            }
            finally
            {
                await writes.CancelAsync();
                await writer;
                await Cluster.Replicas[0].ResumeReplayAsync();
            }
        }

        await harness.WaitForStatusAsync("rwsplit", HealthStatus.Healthy, Patience);

        // The primary stopped: Unhealthy.
        await Cluster.Primary.StopAsync();
        try
        {
            var down = await harness.WaitForStatusAsync("rwsplit", HealthStatus.Unhealthy, Patience, $"no writable primary: {dataSource.PrimaryAddress} is unreachable (");
            Assert.Multiple(() =>
            {
                Assert.That(HealthHarness.Endpoint(down, "primary")["reachable"], Is.False);
                Assert.That(HealthHarness.Endpoint(down, "primary")["lastErrorKind"], Is.Not.Null);
                Assert.That(down.Data["currentPrimary"], Is.EqualTo(dataSource.PrimaryAddress.ToString()), "no replica claims to be primary: no failover");
                AssertNoSecret(down, dataSource);
            });
        }
        finally
        {
            await Cluster.Primary.StartAsync();
        }

        await harness.WaitForStatusAsync("rwsplit", HealthStatus.Healthy, Patience);
    }

    private async Task WriteUntilAsync(CancellationToken stop)
    {
        await using var connection = new NpgsqlConnection(Cluster.PrimaryConnectionString);
        await connection.OpenAsync(CancellationToken.None);
        await using var insert = new NpgsqlCommand("INSERT INTO health_writes DEFAULT VALUES", connection);
        for (var i = 0; i < 3000 && !stop.IsCancellationRequested; i++)
        {
            await insert.ExecuteNonQueryAsync(CancellationToken.None);
            try
            {
                await Task.Delay(50, stop);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    [Test]
    [Order(2)]
    public async Task Keyed_data_sources_have_their_own_check()
    {
        await using var harness = new HealthHarness(s =>
        {
            s.AddReadWriteSplit(o => Configure(o));
            s.AddReadWriteSplit("reporting", o => Configure(o, replicas: [Cluster.ReplicaConnectionStrings[0]]));
            s.AddHealthChecks()
                .AddRwSplit(tags: ["live"])
                .AddKeyedRwSplit("reporting", tags: ["reporting"]);
        });

        var main = await harness.WaitForStatusAsync("rwsplit", HealthStatus.Healthy, Patience);
        var reporting = await harness.WaitForStatusAsync("rwsplit-reporting", HealthStatus.Healthy, Patience);

        Assert.Multiple(() =>
        {
            Assert.That(main.Data["dataSource"], Is.EqualTo("default"));
            Assert.That(main.Data.ContainsKey("replica1"), Is.True);
            Assert.That(reporting.Data["dataSource"], Is.EqualTo("reporting"));
            Assert.That(reporting.Data.ContainsKey("replica1"), Is.False, "the keyed data source has one replica");
            Assert.That(reporting.Tags, Is.EquivalentTo(new[] { "reporting" }));
            Assert.That(reporting.Description, Does.Contain("'reporting'"));
        });
    }

    [Test]
    [Order(3)]
    public async Task Probes_send_no_query_to_any_server()
    {
        // A 10-minute interval: after its first round the monitor stays silent, so any statement now would be the check's.
        await using var harness = Harness(interval: TimeSpan.FromMinutes(10));
        var dataSource = harness.Services.GetRequiredService<RwSplitDataSource>();
        await harness.WaitForStatusAsync("rwsplit", HealthStatus.Healthy, Patience);
        var servers = Cluster.Servers.ToArray();
        var since = new DateTime[servers.Length];
        for (var i = 0; i < servers.Length; i++)
            since[i] = await servers[i].ScalarAsync<DateTime>("SELECT clock_timestamp()");

        for (var i = 0; i < 200; i++)
            Assert.That((await harness.CheckAsync()).Entries["rwsplit"].Status, Is.EqualTo(HealthStatus.Healthy));
        var quiet = await ActiveSinceAsync(servers, since);

        // The measure can see a probe: one monitor round now shows on every server.
        await dataSource.RefreshTopologyAsync();
        var afterRound = await ActiveSinceAsync(servers, since);

        Assert.Multiple(() =>
        {
            Assert.That(quiet, Is.All.EqualTo(0), "client statements or connections on primary, replica1, replica2 during 200 checks");
            Assert.That(afterRound, Is.All.GreaterThan(0), "one monitor round must show on every server, or the measure proves nothing");
        });
    }

    /// <summary>Per server: client backends (other than the one asking) that started, or started a statement, since the server's time in <paramref name="since"/>.</summary>
    private static async Task<long[]> ActiveSinceAsync(PgServer[] servers, DateTime[] since)
    {
        var counts = new long[servers.Length];
        for (var i = 0; i < servers.Length; i++)
        {
            await using var connection = new NpgsqlConnection(servers[i].ConnectionString + ";Pooling=false");
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand(
                """
                SELECT count(*) FROM pg_stat_activity
                WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
                  AND (backend_start >= $1 OR query_start >= $1)
                """,
                connection);
            command.Parameters.Add(new NpgsqlParameter { Value = since[i], NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.TimestampTz });
            counts[i] = (long)(await command.ExecuteScalarAsync())!;
        }

        return counts;
    }

    [Test]
    [Order(4)]
    public async Task A_read_that_falls_back_to_the_primary_makes_it_Degraded_and_is_counted()
    {
        const string nowhere = "Host=127.0.0.1;Port=25483;Username=postgres;Database=rwsplit;Timeout=2";
        await using var harness = new HealthHarness(s =>
        {
            s.AddReadWriteSplit(o => Configure(o, replicas: [nowhere]));
            s.AddHealthChecks().AddRwSplit();
        });
        var dataSource = harness.Services.GetRequiredService<RwSplitDataSource>();
        var before = await harness.WaitForStatusAsync("rwsplit", HealthStatus.Degraded, Patience, "is ejected: unreachable (socket:ConnectionRefused)");
        Assert.That(before.Description, Does.Not.Contain("fell back"));

        await using (var connection = await dataSource.OpenConnectionAsync())
        await using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT count(*) FROM health_writes";
            await command.ExecuteScalarAsync();
        }

        var after = (await harness.CheckAsync()).Entries["rwsplit"];
        Assert.Multiple(() =>
        {
            Assert.That(after.Status, Is.EqualTo(HealthStatus.Degraded));
            Assert.That(after.Description, Does.Contain("a read fell back to the primary"));
            Assert.That(after.Data["fallbackReads"], Is.EqualTo(1L));
            Assert.That(after.Data.ContainsKey("lastFallbackReadSecondsAgo"), Is.True);
        });
    }

    [Test]
    [Order(4)]
    public async Task A_server_error_is_published_as_its_SQLSTATE_without_its_message()
    {
        var missing = Cluster.ReplicaConnectionStrings[0].Replace("Database=rwsplit", "Database=hc_no_such_db", StringComparison.Ordinal);
        await using var harness = new HealthHarness(s =>
        {
            s.AddReadWriteSplit(o => Configure(o, replicas: [missing]));
            s.AddHealthChecks().AddRwSplit();
        });
        var dataSource = harness.Services.GetRequiredService<RwSplitDataSource>();

        var entry = await harness.WaitForStatusAsync("rwsplit", HealthStatus.Degraded, Patience, "is ejected: unreachable (sqlstate:3D000)");

        Assert.Multiple(() =>
        {
            Assert.That(HealthHarness.Endpoint(entry, "replica0")["lastErrorKind"], Is.EqualTo("sqlstate:3D000"));
            Assert.That(dataSource.GetHealth().Endpoints[1].LastError, Does.Contain("hc_no_such_db"), "the raw message names the database");
            Assert.That(HealthHarness.Json(entry), Does.Not.Contain("does not exist"));
            AssertNoSecret(entry, dataSource);
        });
    }

    [Test]
    [Order(5)]
    public async Task A_failover_is_Degraded_not_Unhealthy_and_names_the_new_primary()
    {
        // Destructive (replica2 becomes a primary): the fixture's last test; its cluster is thrown away afterwards.
        await using var harness = Harness();
        var dataSource = harness.Services.GetRequiredService<RwSplitDataSource>();
        await harness.WaitForStatusAsync("rwsplit", HealthStatus.Healthy, Patience);

        await Cluster.Primary.StopAsync();
        await Cluster.Replicas[1].PromoteAsync();
        var promoted = dataSource.ReplicaAddresses[1].ToString();

        var failedOver = await harness.WaitForStatusAsync("rwsplit", HealthStatus.Degraded, Patience, $"a failover happened");
        Assert.Multiple(() =>
        {
            Assert.That(failedOver.Description, Does.Contain($"writes go to {promoted}"));
            Assert.That(failedOver.Description, Does.Not.Contain("no writable primary"));
            Assert.That(failedOver.Data["currentPrimary"], Is.EqualTo(promoted));
            Assert.That(failedOver.Data["failovers"], Is.EqualTo(1L));
            Assert.That(HealthHarness.Endpoint(failedOver, "replica1")["observedRole"], Is.EqualTo("Primary"));
        });
    }
}

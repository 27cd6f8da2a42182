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
/// One caller's bad request must not change what the others get. A read that fails because of the caller's input (a
/// parameter value Npgsql cannot write) or because of its own statement (an error after which Npgsql closes the
/// connection) surfaces exactly as raw Npgsql surfaces it, is not retried elsewhere, and leaves its replica in rotation;
/// only the broken physical connection is dropped. The raw provider on the same replica is the oracle.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class BadInputTests
{
    private const string Function = "rwsplit_bad_input_xx000";

    [OneTimeSetUp]
    public async Task CreateFunctionAsync()
    {
        await using var connection = new NpgsqlConnection(Cluster.PrimaryConnectionString);
        await connection.OpenAsync();
        await using var create = new NpgsqlCommand($"CREATE OR REPLACE FUNCTION {Function}() RETURNS int LANGUAGE plpgsql STABLE AS $$ BEGIN RAISE EXCEPTION 'one query failed' USING ERRCODE = 'XX000'; END $$", connection);
        await create.ExecuteNonQueryAsync();
        await Cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(30));
    }

    private static RwSplitDataSource Create(TelemetryCapture capture, string name) => RwSplitDataSource.Create(o =>
    {
        o.UseNpgsql();
        o.Name = name;
        o.Primary = Cluster.PrimaryConnectionString;
        foreach (var replica in Cluster.ReplicaConnectionStrings)
            o.Replicas.Add(replica);
        o.Consistency = ReadConsistency.Eventual;
        o.LoggerFactory = capture.LoggerFactory;
    });

    private static NpgsqlCommand Unwritable(NpgsqlConnection? connection = null)
    {
        var command = new NpgsqlCommand("SELECT @p::text", connection);
        command.Parameters.Add(new NpgsqlParameter("p", new object()));
        return command;
    }

    /// <summary>What raw Npgsql throws for <paramref name="prepare"/> on a replica, and whether its connection stays open.</summary>
    private static async Task<(Exception Error, bool StillOpen)> RawAsync(Func<NpgsqlConnection, NpgsqlCommand> prepare, bool async)
    {
        await using var connection = new NpgsqlConnection(Cluster.ReplicaConnectionStrings[0]);
        await connection.OpenAsync();
        await using var command = prepare(connection);
        var error = async
            ? Assert.CatchAsync(async () => await command.ExecuteScalarAsync())
            : Assert.Catch(() => command.ExecuteScalar());
        return (error!, connection.State == System.Data.ConnectionState.Open);
    }

    private static async Task AssertOtherReadsStayOnReplicasAsync(RwSplitDataSource dataSource, RwSplitConnection failed, TelemetryCapture capture, bool async)
    {
        Assert.That(dataSource.GetTopology().Skip(1).Select(e => e.IsAvailable), Is.All.True, () => "no replica ejected: " + string.Join(Environment.NewLine, dataSource.GetTopology()));
        Assert.That(capture.Events.Select(e => e.Id.Id), Has.None.EqualTo(2008).And.None.EqualTo(1001), "the failed read was not retried elsewhere");
        Assert.That(capture.Measurements.Where(m => m.Instrument is "rwsplit.routing.read_retries" or "rwsplit.replica.connection_failures" or "rwsplit.replica.ejections"), Is.Empty);

        // The same logical connection goes on (on a fresh physical connection if the provider closed its own) ...
        await using (var next = failed.CreateCommand())
        {
            next.CommandText = "SELECT 1";
            Assert.That(async ? await next.ExecuteScalarAsync() : next.ExecuteScalar(), Is.EqualTo(1));
            Assert.That(next.LastDecision?.Target, Is.EqualTo(RouteTarget.Replica));
        }

        // ... and every other caller still reads from replicas.
        for (var i = 0; i < 6; i++)
        {
            await using var other = await dataSource.OpenConnectionAsync();
            await using var read = other.CreateCommand();
            read.CommandText = "SELECT 1";
            Assert.That(async ? await read.ExecuteScalarAsync() : read.ExecuteScalar(), Is.EqualTo(1));
            Assert.That(read.LastDecision?.Target, Is.EqualTo(RouteTarget.Replica), "other callers are not moved to the primary");
        }
    }

    /// <summary>Defect: the client-side InvalidCastException ejected the healthy replica for ReplicaRetryDelay and re-ran the read on the primary.</summary>
    [Test]
    public async Task An_unwritable_parameter_fails_its_own_read_only_and_the_replica_stays_in_rotation([Values] bool async)
    {
        var (raw, rawStillOpen) = await RawAsync(c => Unwritable(c), async);
        using var capture = new TelemetryCapture("bad-input-parameter");
        await using var dataSource = Create(capture, "bad-input-parameter");
        await dataSource.RefreshTopologyAsync();
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT @p::text";
        command.Parameters.Add(new NpgsqlParameter("p", new object()));

        var error = async ? Assert.CatchAsync(async () => await command.ExecuteScalarAsync()) : Assert.Catch(() => command.ExecuteScalar());
        Assert.That(error, Is.TypeOf(raw.GetType()), $"as raw Npgsql throws (raw connection still open after it: {rawStillOpen})");
        Assert.That(error!.Message, Is.EqualTo(raw.Message));
        Assert.That(command.LastDecision?.Target, Is.EqualTo(RouteTarget.Replica));
        await AssertOtherReadsStayOnReplicasAsync(dataSource, connection, capture, async);
    }

    /// <summary>Defect: an XX000 raised by one query (after which Npgsql closes its connection) ejected the replica and re-ran the read on the primary.</summary>
    [Test]
    public async Task A_statement_error_that_closes_the_connection_fails_its_own_read_only([Values] bool async)
    {
        var (raw, rawStillOpen) = await RawAsync(c => new NpgsqlCommand($"SELECT {Function}()", c), async);
        Assert.That(raw, Is.TypeOf<PostgresException>().With.Property(nameof(PostgresException.SqlState)).EqualTo("XX000"));
        using var capture = new TelemetryCapture("bad-input-statement");
        await using var dataSource = Create(capture, "bad-input-statement");
        await dataSource.RefreshTopologyAsync();
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT {Function}()";

        var error = async ? Assert.CatchAsync(async () => await command.ExecuteScalarAsync()) : Assert.Catch(() => command.ExecuteScalar());
        Assert.That(error, Is.TypeOf<PostgresException>().With.Property(nameof(PostgresException.SqlState)).EqualTo("XX000"), $"as raw Npgsql (raw connection still open after it: {rawStillOpen})");
        Assert.That(command.LastDecision?.Target, Is.EqualTo(RouteTarget.Replica));
        await AssertOtherReadsStayOnReplicasAsync(dataSource, connection, capture, async);
    }

    /// <summary>
    /// Defect (found by the conformance suite): a read that ran past its CommandTimeout on a replica counted as the
    /// replica failing (Npgsql reports a TimeoutException inside and closes its connection): the replica was ejected,
    /// its pool cleared, and the read re-run elsewhere with a fresh full timeout. A timeout is the caller's budget.
    /// </summary>
    [Test]
    public async Task A_statement_timeout_on_a_replica_surfaces_as_the_provider_s_and_the_replica_stays_in_rotation([Values] bool async)
    {
        var (raw, _) = await RawAsync(c => new NpgsqlCommand("SELECT pg_sleep(3)", c) { CommandTimeout = 1 }, async);
        Assert.That(raw, Is.TypeOf<NpgsqlException>().With.InnerException.InstanceOf<TimeoutException>(), "counter-check: how Npgsql reports its timeout");
        using var capture = new TelemetryCapture("bad-input-timeout");
        await using var dataSource = Create(capture, "bad-input-timeout");
        await dataSource.RefreshTopologyAsync();
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT pg_sleep(3)";
        command.CommandTimeout = 1;

        var watch = System.Diagnostics.Stopwatch.StartNew();
        var error = async ? Assert.CatchAsync(async () => await command.ExecuteScalarAsync()) : Assert.Catch(() => command.ExecuteScalar());
        Assert.That(error, Is.TypeOf(raw.GetType()).With.InnerException.InstanceOf<TimeoutException>(), "the provider's own timeout, unchanged");
        Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(2.5)), "run once, not again elsewhere");
        Assert.That(command.LastDecision?.Target, Is.EqualTo(RouteTarget.Replica));
        await AssertOtherReadsStayOnReplicasAsync(dataSource, connection, capture, async);
    }

    /// <summary>The same bad parameter in a batch: the batch fails alone, its broken connection is dropped, the replica stays.</summary>
    [Test]
    public async Task An_unwritable_parameter_in_a_batch_fails_the_batch_only([Values] bool async)
    {
        using var capture = new TelemetryCapture("bad-input-batch");
        await using var dataSource = Create(capture, "bad-input-batch");
        await dataSource.RefreshTopologyAsync();
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var batch = connection.CreateBatch();
        var statement = batch.CreateBatchCommand();
        statement.CommandText = "SELECT @p::text";
        statement.Parameters.Add(new NpgsqlParameter("p", new object()));
        batch.BatchCommands.Add(statement);
        var error = async ? Assert.CatchAsync(async () => await batch.ExecuteScalarAsync()) : Assert.Catch(() => batch.ExecuteScalar());
        Assert.That(error, Is.InstanceOf<InvalidCastException>());
        await AssertOtherReadsStayOnReplicasAsync(dataSource, connection, capture, async);
    }
}

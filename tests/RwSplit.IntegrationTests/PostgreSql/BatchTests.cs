using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Linq;
using System.Threading.Tasks;
using Npgsql;
using NUnit.Framework;
using RwSplit.Diagnostics;
using RwSplit.Routing;
using RwSplit.TestSupport;
using static RwSplit.IntegrationTests.ClusterSetup;

namespace RwSplit.IntegrationTests.PostgreSql;

/// <summary>
/// <see cref="RwSplitBatch"/> against the real primary and replicas: every statement of a batch reports the port of the
/// server that ran it (<c>inet_server_port()</c>), so the assertions are about where the batch really ran.
/// </summary>
public sealed class BatchTests
{
    private RwSplitDataSource _dataSource = null!;
    private IDisposable? _owner;

    [OneTimeSetUp]
    public void CreateDataSource()
        => (_dataSource, _owner) = TestDataSources.Create(DataSourceKind.Builder, "rwsplit-batch");

    [OneTimeTearDown]
    public void DisposeDataSource()
    {
        _dataSource.Dispose();
        _owner?.Dispose();
    }

    private async Task<RwSplitConnection> OpenAsync(bool async)
        => async ? await _dataSource.OpenConnectionAsync() : _dataSource.OpenConnection();

    private static RwSplitBatch Batch(RwSplitConnection connection, params string[] statements)
    {
        var batch = connection.CreateBatch();
        foreach (var sql in statements)
        {
            var command = batch.CreateBatchCommand();
            command.CommandText = sql;
            batch.BatchCommands.Add(command);
        }

        return batch;
    }

    /// <summary>The first column of the first row of every result set.</summary>
    private static async Task<List<object>> FirstValuesAsync(RwSplitBatch batch, bool async)
    {
        var values = new List<object>();
        await using var reader = async ? await batch.ExecuteReaderAsync() : batch.ExecuteReader();
        do
        {
            if (async ? await reader.ReadAsync() : reader.Read())
                values.Add(reader.GetValue(0));
        }
        while (async ? await reader.NextResultAsync() : reader.NextResult());
        return values;
    }

    [Test]
    public async Task A_batch_of_reads_runs_on_a_replica([Values] bool async)
    {
        await using var connection = await OpenAsync(async);
        Assert.That(connection.CanCreateBatch, Is.True);
        await using var batch = Batch(connection, "SELECT inet_server_port()", "SELECT inet_server_port() FROM items WHERE id = $1");
        var parameter = batch.BatchCommands[1].CreateParameter();
        Assert.That(parameter, Is.InstanceOf<NpgsqlParameter>(), "parameters are the provider's own");
        parameter.Value = 1;
        batch.BatchCommands[1].Parameters.Add(parameter);

        var ports = await FirstValuesAsync(batch, async);

        Assert.That(ports, Has.Count.EqualTo(2));
        Assert.That(ports[0], Is.EqualTo(ports[1]), "one batch, one server");
        Assert.That(ReplicaPorts, Does.Contain(Convert.ToInt32(ports[0])), $"expected a replica, ran on port {ports[0]} (primary is {PrimaryPort})");
        Assert.That(batch.LastDecision?.Target, Is.EqualTo(RouteTarget.Replica));
        Assert.That(connection.CurrentPrimaryConnection, Is.Null, "a batch of reads never opens the primary");
        Assert.That(connection.HasWritten, Is.False);
    }

    [Test]
    public async Task A_batch_with_a_write_runs_on_the_primary([Values] bool async)
    {
        var note = "batch-" + Guid.NewGuid();
        await using var connection = await OpenAsync(async);
        await using var batch = Batch(
            connection,
            "SELECT inet_server_port()",
            "INSERT INTO audit(note, written_on) VALUES ($1, inet_server_port()) RETURNING written_on");
        batch.BatchCommands[1].Parameters.Add(new NpgsqlParameter { Value = note });

        var ports = await FirstValuesAsync(batch, async);

        Assert.That(ports, Is.EqualTo(new object[] { PrimaryPort, PrimaryPort }), "the read rides with the write on the primary");
        Assert.That(batch.BatchCommands[1].RecordsAffected, Is.EqualTo(1));
        Assert.That(batch.LastDecision?.Target, Is.EqualTo(RouteTarget.Primary));
        Assert.That(batch.LastDecision?.Reason, Is.EqualTo(RoutingReason.Write));
        Assert.That(connection.HasWritten, Is.True, "the session counts as written (read-your-writes)");
        Assert.That(connection.CurrentReplicaConnection, Is.Null);

        await using var check = connection.CreateCommand();
        check.CommandText = $"SELECT written_on FROM audit WHERE note = '{note}' /* rwsplit:primary */";
        Assert.That(async ? await check.ExecuteScalarAsync() : check.ExecuteScalar(), Is.EqualTo(PrimaryPort));
    }

    [Test]
    public async Task A_batch_inside_a_transaction_runs_on_the_primary_in_that_transaction([Values] bool async)
    {
        var note = "batch-tx-" + Guid.NewGuid();
        await using var connection = await OpenAsync(async);
        await using (var transaction = async ? await connection.BeginTransactionAsync() : connection.BeginTransaction())
        {
            await using var batch = Batch(connection, "SELECT inet_server_port()", $"INSERT INTO audit(note) VALUES ('{note}')");
            batch.Transaction = transaction;
            Assert.That(async ? await batch.ExecuteScalarAsync() : batch.ExecuteScalar(), Is.EqualTo(PrimaryPort));
            Assert.That(batch.LastDecision?.Reason, Is.EqualTo(RoutingReason.LocalTransaction));

            // A batch of reads in the transaction sees the transaction's own uncommitted row: same connection, same transaction.
            await using var read = Batch(connection, $"SELECT count(*) FROM audit WHERE note = '{note}'", "SELECT inet_server_port()");
            var values = await FirstValuesAsync(read, async);
            Assert.That(values, Is.EqualTo(new object[] { 1L, PrimaryPort }));

            if (async)
                await transaction.RollbackAsync();
            else
                transaction.Rollback();
        }

        await using var check = connection.CreateCommand();
        check.CommandText = $"SELECT count(*) FROM audit WHERE note = '{note}' /* rwsplit:primary */";
        Assert.That(async ? await check.ExecuteScalarAsync() : check.ExecuteScalar(), Is.EqualTo(0L), "the rollback discarded the batch's insert");
    }

    [Test]
    public async Task A_batch_with_a_session_statement_pins_the_session_to_the_primary([Values] bool async)
    {
        await using var connection = await OpenAsync(async);
        await using var batch = Batch(connection, "SET application_name = 'rwsplit-batch-pin'", "SELECT inet_server_port()");
        var rows = async ? await batch.ExecuteNonQueryAsync() : batch.ExecuteNonQuery();

        Assert.That(rows, Is.EqualTo(-1).Or.EqualTo(0));
        Assert.That(batch.LastDecision?.Target, Is.EqualTo(RouteTarget.Primary));
        Assert.That(connection.PinnedReason, Is.Not.Null);

        await using var after = connection.CreateCommand();
        after.CommandText = "SELECT current_setting('application_name')";
        Assert.That(async ? await after.ExecuteScalarAsync() : after.ExecuteScalar(), Is.EqualTo("rwsplit-batch-pin"), "later reads see the batch's setting");
    }

    [Test]
    public async Task A_prepared_batch_of_reads_runs_on_a_replica_with_its_timeout([Values] bool async)
    {
        await using var connection = await OpenAsync(async);
        await using var batch = Batch(connection, "SELECT inet_server_port()", "SELECT 1");
        batch.Timeout = 7;
        if (async)
            await batch.PrepareAsync();
        else
            batch.Prepare();
        Assert.That(batch.LastDecision?.Target, Is.EqualTo(RouteTarget.Replica));

        var port = async ? await batch.ExecuteScalarAsync() : batch.ExecuteScalar();
        Assert.That(ReplicaPorts, Does.Contain(Convert.ToInt32(port)));
        Assert.That(batch.InnerBatch.Timeout, Is.EqualTo(7));
        Assert.That(batch.InnerBatch.Connection, Is.SameAs(connection.CurrentReplicaConnection));
        batch.Cancel(); // nothing running: a no-op, as for the provider's batch
    }

    [Test]
    public async Task A_batch_on_a_closed_connection_fails_with_the_fix()
    {
        await using var connection = _dataSource.CreateConnection();
        await using var batch = Batch(connection, "SELECT 1");
        var ex = Assert.ThrowsAsync<InvalidOperationException>(async () => await batch.ExecuteScalarAsync());
        Assert.That(ex!.Message, Does.Contain("Open()"));

        await connection.OpenAsync();
        await using var empty = connection.CreateBatch();
        ex = Assert.Throws<InvalidOperationException>(() => empty.ExecuteNonQuery());
        Assert.That(ex!.Message, Does.Contain("no statements"));
    }

    [Test]
    public void The_provider_factory_creates_batches_of_provider_parameters()
    {
        using var connection = _dataSource.CreateConnection();
        var factory = connection.ProviderFactory;
        Assert.That(factory.CanCreateBatch, Is.True);
        using var batch = factory.CreateBatch();
        Assert.That(batch, Is.InstanceOf<RwSplitBatch>());
        var command = factory.CreateBatchCommand();
        Assert.That(command, Is.InstanceOf<RwSplitBatchCommand>());
        Assert.That(command.CreateParameter(), Is.InstanceOf<NpgsqlParameter>());
        Assert.That(((RwSplitBatchCommand)command).InnerBatchCommand, Is.InstanceOf<NpgsqlBatchCommand>());
        Assert.Throws<ArgumentException>(() => batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT 1")));
    }

    // ---- Recovery and tracing: batches run through the same executor as commands ----

    [Test]
    public async Task A_batch_a_replica_refuses_as_a_write_runs_once_on_the_primary_and_is_learned([Values] bool async)
    {
        var name = "batch-misroute-" + async;
        using var capture = new TelemetryCapture(name);
        var (dataSource, owner) = TestDataSources.Create(DataSourceKind.Builder, "rwsplit-" + name, o =>
        {
            o.Name = name;
            o.LoggerFactory = capture.LoggerFactory;
        });
        using var ownerScope = owner;
        await using var disposeSource = dataSource;
        var note = "batch-misroute-" + Guid.NewGuid();

        // The caller declared the function call a read; the hot standby refuses the INSERT inside it (SQLSTATE 25006).
        await using var connection = async ? await dataSource.OpenConnectionAsync() : dataSource.OpenConnection();
        await using var batch = Batch(connection, $"/* rwsplit:replica */ SELECT add_audit('{note}')", "SELECT inet_server_port()");
        var ports = (await FirstValuesAsync(batch, async)).Select(Convert.ToInt32).ToList();

        Assert.That(ports, Is.EqualTo(new[] { PrimaryPort, PrimaryPort }), "the whole batch ran again, on the primary");
        Assert.That(batch.LastDecision?.Reason, Is.EqualTo(RoutingReason.MisrouteRetry));
        Assert.That(capture.Logged(1001), Has.Count.EqualTo(1), "the misroute is logged once");
        Assert.That(capture.Measured("rwsplit.routing.misroutes"), Has.Count.EqualTo(1));
        var span = capture.Activities.Single(a => a.OperationName == "rwsplit.route");
        Assert.That(span.GetTagItem(TagNames.RouteReason), Is.EqualTo("misroute_retry"), "the batch's span says why it ended on the primary");

        // The batch is learned as a write (Npgsql does not name the refused statement): it goes to the primary at once now.
        var again = (await FirstValuesAsync(batch, async)).Select(Convert.ToInt32).ToList();
        Assert.That(again, Is.EqualTo(new[] { PrimaryPort, PrimaryPort }));
        Assert.That(batch.LastDecision?.Reason, Is.EqualTo(RoutingReason.LearnedWrite));

        // Only that batch: a batch of its plain read alone still runs on a replica.
        await using (var reader = async ? await dataSource.OpenConnectionAsync() : dataSource.OpenConnection())
        {
            await using var read = Batch(reader, "SELECT inet_server_port()");
            Assert.That(ReplicaPorts, Does.Contain(Convert.ToInt32((await FirstValuesAsync(read, async))[0])));
        }

        await using var check = async ? await dataSource.OpenConnectionAsync() : dataSource.OpenConnection();
        check.Consistency = ReadConsistency.Strong;
        await using var count = check.CreateCommand();
        count.CommandText = $"SELECT count(*) FROM audit WHERE note = '{note}'";
        Assert.That(async ? await count.ExecuteScalarAsync() : count.ExecuteScalar(), Is.EqualTo(2L), "one row per execution: the refused attempt wrote nothing");
    }

    [Test]
    public async Task A_batch_whose_replica_session_died_runs_on_another_server_and_the_replica_is_ejected([Values] bool async)
    {
        var name = "batch-replica-failure-" + async;
        var application = "rwsplit-" + name;
        using var capture = new TelemetryCapture(name);
        var (dataSource, owner) = TestDataSources.Create(DataSourceKind.Builder, application, o =>
        {
            o.Name = name;
            o.LoggerFactory = capture.LoggerFactory;
            o.HealthMonitoring = false; // only the batch's own failure may eject the replica
        });
        using var ownerScope = owner;
        await using var disposeSource = dataSource;

        await using var connection = async ? await dataSource.OpenConnectionAsync() : dataSource.OpenConnection();
        await using var batch = Batch(connection, "SELECT inet_server_port()", "SELECT count(*) FROM items");
        var first = Convert.ToInt32((await FirstValuesAsync(batch, async))[0]);
        var replica = ReplicaPorts.ToList().IndexOf(first);
        Assert.That(replica, Is.GreaterThanOrEqualTo(0), $"the batch of reads ran on a replica, not on {first}");

        // The replica's server ends this data source's sessions (as a restart or an idle timeout would).
        await using (var admin = new NpgsqlConnection(Cluster.ReplicaConnectionStrings[replica]))
        {
            await admin.OpenAsync();
            await using var terminate = new NpgsqlCommand("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = @app", admin);
            terminate.Parameters.AddWithValue("app", application);
            Assert.That(await terminate.ExecuteScalarAsync(), Is.GreaterThanOrEqualTo(1L));
        }

        var values = await FirstValuesAsync(batch, async);

        Assert.That(values, Has.Count.EqualTo(2), "the batch's results, from the server it ran on instead");
        Assert.That(Convert.ToInt32(values[0]), Is.Not.EqualTo(first), "not the replica whose session died");
        Assert.That(capture.Logged(2008), Has.Count.EqualTo(1), "the retry is logged");
        Assert.That(capture.Measured("rwsplit.routing.read_retries"), Has.Count.EqualTo(1));
        Assert.That(dataSource.GetTopology()[replica + 1].IsAvailable, Is.False, "the failed replica is out of rotation");
    }
}

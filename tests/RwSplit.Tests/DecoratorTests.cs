using System;
using System.Data;
using System.Data.Common;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using System.Transactions;
using NUnit.Framework;
using RwSplit.Routing;
using RwSplit.TestSupport;
using RwSplit.Tests.Fakes;
using IsolationLevel = System.Data.IsolationLevel;

namespace RwSplit.Tests;

/// <summary>
/// The decorator over a recording provider: which physical connection got which call, in which form (sync or async),
/// with the caller's cancellation token, and what the application gets back.
/// </summary>
[TestFixture(false)]
[TestFixture(true)]
public sealed class DecoratorTests
{
    private readonly bool _async;
    private FakeServer _primary = null!;
    private FakeServer _replica1 = null!;
    private FakeServer _replica2 = null!;
    private RwSplitDataSource _dataSource = null!;
    private CancellationTokenSource _cts = null!;
    private TelemetryCapture _telemetry = null!;

    public DecoratorTests(bool async) => _async = async;

    private CancellationToken Token => _cts.Token;

    [SetUp]
    public void SetUp()
    {
        _primary = FakeServer.Create("primary");
        _replica1 = FakeServer.Create("replica1");
        _replica2 = FakeServer.Create("replica2");
        _telemetry = new TelemetryCapture("decorator-" + _primary.Name);
        _dataSource = Build();
        _cts = new CancellationTokenSource();
    }

    [TearDown]
    public void TearDown()
    {
        _dataSource.Dispose();
        _cts.Dispose();
        _telemetry.Dispose();
    }

    private RwSplitDataSource Build(Action<RwSplitOptions>? configure = null)
        => RwSplitDataSource.Create(o =>
        {
            o.UseDialect(FakeDialect.Instance);
            o.Primary = $"Server={_primary.Name};Password=hunter2";
            o.Replicas.Add($"Server={_replica1.Name}");
            o.Replicas.Add($"Server={_replica2.Name}");
            o.HealthMonitoring = false; // the journal must show the decorator's calls only (the monitor has its own tests)
            o.Name = "decorator-" + _primary.Name;
            o.LoggerFactory = _telemetry.LoggerFactory;
            configure?.Invoke(o);
        });

    private async Task<RwSplitConnection> OpenAsync(RwSplitDataSource? dataSource = null)
    {
        var connection = (dataSource ?? _dataSource).CreateConnection();
        if (_async)
            await connection.OpenAsync(Token);
        else
            connection.Open();
        return connection;
    }

    private async Task<object?> ScalarAsync(DbCommand command)
        => _async ? await command.ExecuteScalarAsync(Token) : command.ExecuteScalar();

    private async Task<object?> ScalarAsync(RwSplitConnection connection, string sql)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        return await ScalarAsync(command);
    }

    private void AssertForwarded(FakeServer server, string operation, string? text = null)
    {
        var call = server.Journal.LastOrDefault(c => c.Operation.StartsWith(operation, StringComparison.Ordinal) && (text is null || c.Text == text));
        Assert.That(call, Is.Not.Null, $"{server.Name} got no {operation} {text}");
        Assert.That(call!.Async, Is.EqualTo(_async), $"{operation} forwarded {(call.Async ? "async" : "sync")}");
        if (_async && operation is not ("Close" or "Enlist"))
            Assert.That(call.Token, Is.EqualTo(Token), $"{operation} got the caller's cancellation token");
    }

    [Test]
    public async Task Read_goes_to_a_replica_and_write_to_the_primary_with_the_callers_token()
    {
        await using var connection = await OpenAsync();
        Assert.That(await ScalarAsync(connection, "SELECT 1"), Is.EqualTo(_replica1.Name).Or.EqualTo(_replica2.Name));
        Assert.That(await ScalarAsync(connection, "UPDATE t SET x = 1"), Is.EqualTo(_primary.Name));
        AssertForwarded(_primary, "Open");
        AssertForwarded(_primary, "Scalar", "UPDATE t SET x = 1");
    }

    [Test]
    public async Task Open_is_lazy_per_role()
    {
        await using var connection = await OpenAsync();
        Assert.That(_primary.Journal, Is.Empty, "opening the logical connection opens nothing");
        for (var i = 0; i < 3; i++)
            await ScalarAsync(connection, "SELECT 1");
        Assert.That(_primary.Journal, Is.Empty, "reads never open the primary");
        var replicaOpens = _replica1.Journal.Concat(_replica2.Journal).Count(c => c.Operation == "Open");
        Assert.That(replicaOpens, Is.EqualTo(1), "one replica connection, reused");

        await using var writer = await OpenAsync();
        await ScalarAsync(writer, "DELETE FROM t");
        await ScalarAsync(writer, "INSERT INTO t VALUES (1)");
        Assert.That(_replica1.Journal.Concat(_replica2.Journal).Count(c => c.Operation == "Open"), Is.EqualTo(1), "writes never open a replica");
    }

    [Test]
    public async Task Execute_non_query_and_reader_forward_and_return_the_providers_reader()
    {
        await using var connection = await OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT * FROM t";
        await using (var reader = _async ? await command.ExecuteReaderAsync(CommandBehavior.SequentialAccess, Token) : command.ExecuteReader(CommandBehavior.SequentialAccess))
        {
            Assert.That(reader, Is.InstanceOf<DataTableReader>(), "the provider's reader, unwrapped");
            var server = command.LastDecision!.Value.ReplicaIndex == 0 ? _replica1 : _replica2;
            AssertForwarded(server, "Reader:SequentialAccess", "SELECT * FROM t");
        }

        command.CommandText = "DELETE FROM t";
        Assert.That(_async ? await command.ExecuteNonQueryAsync(Token) : command.ExecuteNonQuery(), Is.EqualTo(1));
        AssertForwarded(_primary, "NonQuery", "DELETE FROM t");
    }

    [Test]
    public async Task CloseConnection_reader_closes_the_logical_connection_not_only_the_physical_one()
    {
        var connection = await OpenAsync();
        var states = new System.Collections.Generic.List<ConnectionState>();
        connection.StateChange += (_, e) => states.Add(e.CurrentState);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT 1";
        var reader = _async ? await command.ExecuteReaderAsync(CommandBehavior.CloseConnection, Token) : command.ExecuteReader(CommandBehavior.CloseConnection);
        Assert.That(reader, Is.InstanceOf<RwSplitDataReader>());
        Assert.That(((RwSplitDataReader)reader).InnerReader, Is.InstanceOf<DataTableReader>());
        var server = command.LastDecision!.Value.ReplicaIndex == 0 ? _replica1 : _replica2;
        Assert.That(server.Journal.Last(c => c.Operation.StartsWith("Reader", StringComparison.Ordinal)).Operation, Is.EqualTo("Reader:Default"), "CloseConnection is not passed to the provider");
        Assert.That(reader.Read(), Is.True);
        Assert.That(reader.GetString(0), Is.EqualTo(server.Name));
        if (_async)
            await reader.DisposeAsync();
        else
            reader.Dispose();
        Assert.That(connection.State, Is.EqualTo(ConnectionState.Closed));
        Assert.That(states, Is.EqualTo(new[] { ConnectionState.Closed }));
        Assert.That(server.OpenConnections, Is.Zero, "the physical connection went back");
    }

    [Test]
    public async Task Parameters_are_the_providers_own_and_reach_the_provider_command()
    {
        await using var connection = await OpenAsync();
        await using var command = connection.CreateCommand();
        var parameter = command.CreateParameter();
        Assert.That(parameter, Is.InstanceOf<FakeParameter>());
        parameter.ParameterName = "p";
        parameter.Value = 5;
        command.Parameters.Add(parameter);
        Assert.That(command.InnerCommand.Parameters[0], Is.SameAs(parameter));
        Assert.That(connection.ProviderFactory.CreateParameter(), Is.InstanceOf<FakeParameter>());
    }

    [Test]
    public async Task Local_transaction_runs_everything_on_the_primary_with_the_inner_transaction()
    {
        await using var connection = await OpenAsync();
        var transaction = _async ? await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, Token) : connection.BeginTransaction(IsolationLevel.RepeatableRead);
        AssertForwarded(_primary, "Begin", "RepeatableRead");
        Assert.That(transaction.Connection, Is.SameAs(connection));
        Assert.That(((DbTransaction)transaction).Connection, Is.SameAs(connection), "DbTransaction.Connection is the wrapper");
        Assert.That(transaction.InnerTransaction, Is.InstanceOf<FakeTransaction>());

        await using var command = new RwSplitCommand("SELECT 1", connection, transaction);
        Assert.That(await ScalarAsync(command), Is.EqualTo(_primary.Name));
        Assert.That(command.LastDecision?.Reason, Is.EqualTo(RoutingReason.LocalTransaction));
        Assert.That(command.InnerCommand.Transaction, Is.SameAs(transaction.InnerTransaction), "the provider command got the provider transaction");

        if (_async)
        {
            await transaction.SaveAsync("a", Token);
            await transaction.CommitAsync(Token);
        }
        else
        {
            transaction.Save("a");
            transaction.Commit();
        }

        AssertForwarded(_primary, "Save", "a");
        AssertForwarded(_primary, "Commit");
        Assert.That(transaction.Connection, Is.Null, "a completed transaction has no connection");
        Assert.That(_replica1.Journal.Concat(_replica2.Journal), Is.Empty);
    }

    [Test]
    public async Task A_command_with_a_foreign_or_completed_transaction_is_refused()
    {
        await using var connection = await OpenAsync();
        var transaction = connection.BeginTransaction();
        transaction.Rollback();
        await using var command = new RwSplitCommand("SELECT 1", connection, transaction);
        Assert.ThrowsAsync<InvalidOperationException>(() => ScalarAsync(command));
    }

    [Test]
    public async Task Ambient_transaction_routes_to_the_primary_inside_one_branch()
    {
        await using var connection = await OpenAsync();
        using (var scope = new TransactionScope(TransactionScopeAsyncFlowOption.Enabled))
        {
            Assert.That(await ScalarAsync(connection, "SELECT 1"), Is.EqualTo(_primary.Name));
            Assert.That(await ScalarAsync(connection, "SELECT 2"), Is.EqualTo(_primary.Name));
            scope.Complete();
        }

        Assert.That(_primary.Journal.Count(c => c.Operation == "Begin"), Is.EqualTo(1), "one branch, begun once");
        Assert.That(_primary.Journal.Count(c => c.Operation == "Commit"), Is.EqualTo(1));
        Assert.That(_primary.Journal.Count(c => c.Operation == "Enlist"), Is.Zero, "the provider connection never enlists: RwSplit does");
    }

    [Test]
    public async Task Replica_that_cannot_be_opened_is_skipped_and_the_read_succeeds()
    {
        _replica1.OpenFailure = new ReadOnlyViolationException();
        _replica2.OpenFailure = new ReadOnlyViolationException();
        await using var connection = await OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT 1";
        Assert.That(await ScalarAsync(command), Is.EqualTo(_primary.Name), "both replicas down: the primary serves the read");
        Assert.That(command.LastDecision?.Reason, Is.EqualTo(RoutingReason.NoReplicaAvailable));

        // The failed replicas are skipped for ReplicaRetryDelay: a new connection does not even try them.
        _replica1.Journal.Clear();
        await using var next = await OpenAsync();
        Assert.That(await ScalarAsync(next, "SELECT 1"), Is.EqualTo(_primary.Name));
        Assert.That(_replica1.Journal, Is.Empty);
        var failed = _telemetry.Logged(2000);
        Assert.That(failed.Select(e => e.Message), Is.EquivalentTo(new[] { _replica1.Name, _replica2.Name }.Select(r => $"Could not open a connection to replica {r}/db; it is skipped for 00:00:05 and the read moves elsewhere")));
        Assert.That(failed.Select(e => e.Exception), Is.All.InstanceOf<ReadOnlyViolationException>(), "the provider's exception is attached");
        Assert.That(_telemetry.Measured("rwsplit.replica.connection_failures").Sum(m => m.Value), Is.EqualTo(2));
    }

    [Test]
    public async Task Unreachable_primary_throws_RwSplitException_naming_the_endpoint_without_the_password()
    {
        _primary.OpenFailure = new ReadOnlyViolationException();
        await using var connection = await OpenAsync();
        var ex = Assert.ThrowsAsync<RwSplitException>(() => ScalarAsync(connection, "DELETE FROM t"));
        Assert.That(ex!.Error, Is.EqualTo(RwSplitError.EndpointUnreachable));
        Assert.That(ex.Endpoint?.Host, Is.EqualTo(_primary.Name));
        Assert.That(ex.Message, Does.Contain("primary " + _primary.Name));
        Assert.That(ex.Message, Does.Not.Contain("hunter2"));
        Assert.That(_dataSource.ConnectionString, Does.Not.Contain("hunter2"));
        Assert.That(connection.ConnectionString, Does.Not.Contain("hunter2"));
    }

    [Test]
    public async Task Misrouted_write_is_retried_once_on_the_primary_and_remembered()
    {
        const string sql = "/* rwsplit:replica */ ?? SELECT do_write('secret-literal', 4111)";
        _replica1.RejectsAsWrite.Add(sql);
        _replica2.RejectsAsWrite.Add(sql);
        await using var connection = await OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        Assert.That(await ScalarAsync(command), Is.EqualTo(_primary.Name));
        Assert.That(command.LastDecision?.Reason, Is.EqualTo(RoutingReason.MisrouteRetry));
        Assert.That(_primary.Journal.Count(c => c.Text == sql), Is.EqualTo(1));

        await using var other = await OpenAsync();
        await using var again = other.CreateCommand();
        again.CommandText = sql;
        Assert.That(await ScalarAsync(again), Is.EqualTo(_primary.Name));
        Assert.That(again.LastDecision?.Reason, Is.EqualTo(RoutingReason.LearnedWrite));
        Assert.That(_replica1.Journal.Concat(_replica2.Journal).Count(c => c.Text == sql), Is.EqualTo(1), "the replica was tried once, ever");
        var misroute = _telemetry.Logged(1001).Single();
        Assert.That(misroute.Level, Is.EqualTo(Microsoft.Extensions.Logging.LogLevel.Warning));
        Assert.That(misroute.Message, Does.StartWith("Replica replica").And.Contain("rejected a statement as a write; retrying it once on the primary"));
        Assert.That(_telemetry.Measured("rwsplit.routing.misroutes").Sum(m => m.Value), Is.EqualTo(1));
        Assert.That(misroute.Message, Does.EndWith("Statement (values masked):   ?? SELECT do_write(?, ?)"), "the statement's shape, not its values");
        _telemetry.AssertNothingContains("secret-literal", "4111", "hunter2");
    }

    [Test]
    public async Task Misroute_retry_can_be_turned_off()
    {
        await using var dataSource = Build(o => o.RetryMisroutedWrites = false);
        const string sql = "/* rwsplit:replica */ ?? SELECT do_write()";
        _replica1.RejectsAsWrite.Add(sql);
        _replica2.RejectsAsWrite.Add(sql);
        await using var connection = await OpenAsync(dataSource);
        Assert.ThrowsAsync<ReadOnlyViolationException>(() => ScalarAsync(connection, sql));
    }

    [Test]
    public async Task Session_commands_are_replayed_on_every_physical_connection()
    {
        await using var connection = await OpenAsync();
        connection.Consistency = ReadConsistency.Eventual;
        await ScalarAsync(connection, "SET search_path = app");
        var replica = connection.CurrentReplicaConnection as FakeConnection;
        Assert.That(replica, Is.Not.Null, "the SET ran where reads run");
        Assert.That(replica!.Server.Journal.Count(c => c.Text == "SET search_path = app"), Is.EqualTo(1));

        await ScalarAsync(connection, "DELETE FROM t");
        Assert.That(_primary.Journal.Select(c => c.Text), Is.EqualTo(new[] { null, "SET search_path = app", "DELETE FROM t" }), "opened, replayed, then the write");

        await ScalarAsync(connection, "SET work_mem = '64MB'");
        Assert.That(_primary.Journal.Count(c => c.Text == "SET work_mem = '64MB'"), Is.EqualTo(1));
        Assert.That(replica.Server.Journal.Count(c => c.Text == "SET work_mem = '64MB'"), Is.EqualTo(1));
        Assert.That(connection.PinnedReason, Is.Null);
    }

    [Test]
    public async Task ChangeDatabase_reaches_open_and_later_physical_connections()
    {
        await using var connection = await OpenAsync();
        await ScalarAsync(connection, "SELECT 1");
        if (_async)
            await connection.ChangeDatabaseAsync("other", Token);
        else
            connection.ChangeDatabase("other");
        Assert.That(connection.Database, Is.EqualTo("other"));
        var replica = (FakeConnection)connection.CurrentReplicaConnection!;
        Assert.That(replica.Database, Is.EqualTo("other"));
        await ScalarAsync(connection, "DELETE FROM t");
        Assert.That(connection.CurrentPrimaryConnection!.Database, Is.EqualTo("other"));
    }

    [Test]
    public async Task Pinning_statement_pins_the_connection_until_close()
    {
        await using var connection = await OpenAsync();
        connection.Consistency = ReadConsistency.Eventual;
        Assert.That(await ScalarAsync(connection, "SELECT 1"), Is.Not.EqualTo(_primary.Name));
        await ScalarAsync(connection, "CREATE TEMP TABLE x (id int)");
        Assert.That(connection.PinnedReason, Is.EqualTo("temporary table"));
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT * FROM x";
        Assert.That(await ScalarAsync(command), Is.EqualTo(_primary.Name));
        Assert.That(command.LastDecision?.Reason, Is.EqualTo(RoutingReason.PinnedSession));
        Assert.That(_telemetry.Logged(1002).Single().Message, Is.EqualTo("Logical connection pinned to the primary: temporary table"));

        connection.Close();
        connection.Open();
        Assert.That(connection.PinnedReason, Is.Null, "a reopened connection is a new session");
    }

    [Test]
    public async Task PreventWrites_throws_before_anything_is_sent()
    {
        await using var connection = await OpenAsync();
        using (RwSplitScope.PreventWrites())
        {
            var ex = Assert.ThrowsAsync<RwSplitException>(() => ScalarAsync(connection, "DELETE FROM t"));
            Assert.That(ex!.Error, Is.EqualTo(RwSplitError.WriteBlocked));
            Assert.ThrowsAsync<RwSplitException>(() => ScalarAsync(connection, "?? unknown"));
            Assert.That(await ScalarAsync(connection, "SELECT 1"), Is.Not.EqualTo(_primary.Name));
        }

        Assert.That(_primary.Journal, Is.Empty);
        Assert.That(RwSplitScope.IsPreventWrites, Is.False, "disposing restores");
        Assert.That(_telemetry.Logged(1003), Has.Count.EqualTo(2));
        Assert.That(_telemetry.Measured("rwsplit.routing.writes_blocked").Sum(m => m.Value), Is.EqualTo(2));
    }

    [Test]
    public async Task ForcePrimary_scope_and_command_target()
    {
        await using var connection = await OpenAsync();
        using (RwSplitScope.ForcePrimary())
            Assert.That(await ScalarAsync(connection, "SELECT 1"), Is.EqualTo(_primary.Name));

        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT 1";
        command.Target = RouteTarget.Primary;
        Assert.That(await ScalarAsync(command), Is.EqualTo(_primary.Name));
        Assert.Throws<ArgumentOutOfRangeException>(() => command.Target = RouteTarget.None);
    }

    [Test]
    public async Task Prepare_runs_on_the_routed_server()
    {
        await using var connection = await OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "DELETE FROM t WHERE id = @id";
        if (_async)
            await command.PrepareAsync(Token);
        else
            command.Prepare();
        Assert.That(_primary.Journal.Any(c => c.Operation == "Prepare"), Is.True);
    }

    [Test]
    public async Task Close_returns_physical_connections_and_raises_StateChange()
    {
        var connection = _dataSource.CreateConnection();
        var states = new System.Collections.Generic.List<(ConnectionState, ConnectionState)>();
        connection.StateChange += (_, e) => states.Add((e.OriginalState, e.CurrentState));
        if (_async)
            await connection.OpenAsync(Token);
        else
            connection.Open();
        await ScalarAsync(connection, "SELECT 1");
        await ScalarAsync(connection, "DELETE FROM t");
        if (_async)
            await connection.CloseAsync();
        else
            connection.Close();
        Assert.That(_primary.OpenConnections + _replica1.OpenConnections + _replica2.OpenConnections, Is.Zero);
        Assert.That(states, Is.EqualTo(new[] { (ConnectionState.Closed, ConnectionState.Open), (ConnectionState.Open, ConnectionState.Closed) }));
        Assert.That(connection.CurrentPrimaryConnection, Is.Null);
        await connection.DisposeAsync();
        Assert.Throws<ObjectDisposedException>(() => connection.Open());
    }

    [Test]
    public async Task Commands_need_an_open_connection_and_text()
    {
        var connection = _dataSource.CreateConnection();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT 1";
        Assert.ThrowsAsync<InvalidOperationException>(() => ScalarAsync(command));
        connection.Open();
        command.CommandText = "";
        Assert.ThrowsAsync<InvalidOperationException>(() => ScalarAsync(command));
        await connection.DisposeAsync();
    }

    [Test]
    public void Connection_from_a_data_source_has_a_fixed_configuration()
    {
        using var connection = _dataSource.CreateConnection();
        Assert.Throws<InvalidOperationException>(() => connection.ConnectionString = "Server=x");
        Assert.That(connection.ProviderFactory, Is.SameAs(RwSplitProviderFactory.For(FakeDialect.Instance)));
        Assert.That(DbProviderFactories_GetFactory(connection), Is.SameAs(connection.ProviderFactory));
        var clone = connection.Clone();
        Assert.That(clone.ConnectionString, Is.EqualTo(connection.ConnectionString));
    }

    private static DbProviderFactory? DbProviderFactories_GetFactory(DbConnection connection) => DbProviderFactories.GetFactory(connection);

    [Test]
    public async Task Eventual_reads_after_writes_use_replicas_read_your_writes_does_not()
    {
        await using var connection = await OpenAsync();
        await ScalarAsync(connection, "DELETE FROM t");
        Assert.That(await ScalarAsync(connection, "SELECT 1"), Is.EqualTo(_primary.Name));
        connection.Consistency = ReadConsistency.Eventual;
        Assert.That(await ScalarAsync(connection, "SELECT 1"), Is.Not.EqualTo(_primary.Name));
        Assert.That(connection.HasWritten, Is.True);
    }
}

using System;
using System.Data;
using System.Data.Common;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;
using RwSplit.Routing;
using RwSplit.Tests.Fakes;

namespace RwSplit.Tests.Execution;

/// <summary>
/// The executions that route without an async state machine (a command run again on an open connection, facts known,
/// no wait): they must decide, balance, recover and count exactly as the general path does, also when the provider's
/// async call really suspends.
/// </summary>
[TestFixture(false)]
[TestFixture(true)]
public sealed class FastPathTests
{
    private readonly bool _async;
    private FakeServer _primary = null!;
    private FakeServer _replica1 = null!;
    private FakeServer _replica2 = null!;
    private RwSplitDataSource _dataSource = null!;

    public FastPathTests(bool async) => _async = async;

    [SetUp]
    public void SetUp()
    {
        _primary = FakeServer.Create("primary");
        _replica1 = FakeServer.Create("replica1");
        _replica2 = FakeServer.Create("replica2");
        _dataSource = RwSplitDataSource.Create(o =>
        {
            o.UseDialect(FakeDialect.Instance);
            o.Primary = $"Server={_primary.Name}";
            o.Replicas.Add($"Server={_replica1.Name}");
            o.Replicas.Add($"Server={_replica2.Name}");
            o.HealthMonitoring = false;
        });
    }

    [TearDown]
    public void TearDown() => _dataSource.Dispose();

    private FakeServer[] Servers => new[] { _primary, _replica1, _replica2 };

    private void Yielding(bool yielding)
    {
        foreach (var server in Servers)
            server.CompletesAsynchronously = yielding;
    }

    private async Task<object?> ScalarAsync(DbCommand command)
        => _async ? await command.ExecuteScalarAsync() : command.ExecuteScalar();

    private async Task<int> NonQueryAsync(DbCommand command)
        => _async ? await command.ExecuteNonQueryAsync() : command.ExecuteNonQuery();

    private async Task<string> ReadServerAsync(DbCommand command, CommandBehavior behavior = CommandBehavior.Default)
    {
        await using var reader = _async ? await command.ExecuteReaderAsync(behavior) : command.ExecuteReader(behavior);
        Assert.That(_async ? await reader.ReadAsync() : reader.Read(), Is.True);
        return reader.GetString(0);
    }

    private FakeServer ServerNamed(object? name) => Servers.Single(s => s.Name == (string?)name);

    private void AssertNothingOutstanding()
        => Assert.That(_dataSource.Replicas.Select(r => r.Outstanding), Is.All.EqualTo(0), "every replica's outstanding count went back to 0");

    [Test]
    public async Task Reads_of_new_connections_alternate_between_replicas()
    {
        // Each new connection has no replica yet: its read draws one balancer ticket, whichever path routes it.
        var servers = new System.Collections.Generic.List<object?>();
        for (var i = 0; i < 6; i++)
        {
            await using var connection = _dataSource.OpenConnection();
            await using var command = connection.CreateCommand();
            command.CommandText = "SELECT 1";
            servers.Add(await ScalarAsync(command));
        }

        Assert.That(servers.Count(s => (string?)s == _replica1.Name), Is.EqualTo(3), string.Join(", ", servers));
        Assert.That(servers.Count(s => (string?)s == _replica2.Name), Is.EqualTo(3), string.Join(", ", servers));
    }

    [Test]
    public async Task A_command_run_again_goes_where_the_general_path_sends_it([Values] bool yielding)
    {
        Yielding(yielding);
        await using var connection = _dataSource.OpenConnection();
        await using var read = connection.CreateCommand();
        read.CommandText = "SELECT 1";
        await using var write = connection.CreateCommand();
        write.CommandText = "UPDATE t SET x = 1";
        connection.Consistency = ReadConsistency.Eventual;

        var replica = await ScalarAsync(read);
        Assert.That(replica, Is.EqualTo(_replica1.Name).Or.EqualTo(_replica2.Name));
        for (var i = 0; i < 3; i++)
        {
            Assert.That(await ScalarAsync(read), Is.EqualTo(replica), "reads stay on the connection's replica");
            Assert.That(read.LastDecision, Is.EqualTo(RoutingDecision.ToReplica(_dataSource.Replicas.ToList().FindIndex(r => r.Address.Host == (string?)replica), RoutingReason.Read)));
            Assert.That(await NonQueryAsync(write), Is.EqualTo(1));
            Assert.That(write.LastDecision?.Target, Is.EqualTo(RouteTarget.Primary));
            Assert.That(await ReadServerAsync(read), Is.EqualTo(replica));
        }

        Assert.That(connection.HasWritten, Is.True, "a write on the primary marks the session");
        Assert.That(_primary.Journal.Count(c => c.Text == "UPDATE t SET x = 1" && c.Async == _async), Is.EqualTo(3));
        AssertNothingOutstanding();

        // Read-your-writes after the write: the primary connection the write left open, as the general path decides.
        connection.Consistency = ReadConsistency.ReadYourWrites;
        Assert.That(await ScalarAsync(read), Is.EqualTo(_primary.Name));
        Assert.That(read.LastDecision?.Reason, Is.EqualTo(RoutingReason.ReadAfterWrite));
    }

    [Test]
    public async Task A_command_run_again_is_retried_on_the_primary_when_the_replica_refuses_it_as_a_write([Values] bool yielding)
    {
        Yielding(yielding);
        const string sql = "SELECT write_something()";
        await using var connection = _dataSource.OpenConnection();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        var replica = ServerNamed(await ScalarAsync(command));

        _replica1.RejectsAsWrite.Add(sql);
        _replica2.RejectsAsWrite.Add(sql);
        Assert.That(await ScalarAsync(command), Is.EqualTo(_primary.Name));
        Assert.That(command.LastDecision?.Reason, Is.EqualTo(RoutingReason.MisrouteRetry));
        Assert.That(replica.Journal.Count(c => c.Text == sql), Is.EqualTo(2), "the replica ran it once, then refused it once");

        Assert.That(await ScalarAsync(command), Is.EqualTo(_primary.Name));
        Assert.That(command.LastDecision?.Reason, Is.EqualTo(RoutingReason.LearnedWrite), "remembered as a write");
        Assert.That(_primary.Journal.Count(c => c.Text == sql), Is.EqualTo(2));
        AssertNothingOutstanding();
    }

    [Test]
    public async Task A_replica_that_breaks_under_a_command_run_again_leaves_the_read_to_the_other([Values] bool yielding, [Values] bool reader)
    {
        Yielding(yielding);
        await using var connection = _dataSource.OpenConnection();
        connection.Consistency = ReadConsistency.Eventual; // under read-your-writes the move is a question of monotonic reads (below)
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT 1";
        var first = ServerNamed(reader ? await ReadServerAsync(command) : await ScalarAsync(command));
        var other = first == _replica1 ? _replica2 : _replica1;

        first.ExecuteFailure = new IOException("connection reset by peer");
        Assert.That(reader ? await ReadServerAsync(command) : await ScalarAsync(command), Is.EqualTo(other.Name));
        Assert.That(command.LastDecision?.Target, Is.EqualTo(RouteTarget.Replica));
        Assert.That(connection.CurrentReplicaConnection, Is.Not.Null);
        Assert.That(first.OpenConnections, Is.EqualTo(0), "the broken replica connection was dropped");
        Assert.That(await ScalarAsync(command), Is.EqualTo(other.Name), "and the read stays on the other replica");
        AssertNothingOutstanding();
    }

    /// <summary>
    /// Monotonic reads: a read-your-writes session whose replica broke must not read older data than it already saw.
    /// Nothing proves the other replica is as far (no positions without health monitoring), so the read goes to the
    /// primary, never to a replica that may be behind.
    /// </summary>
    [Test]
    public async Task A_read_your_writes_session_that_loses_its_replica_never_reads_older_data([Values] bool yielding)
    {
        Yielding(yielding);
        await using var connection = _dataSource.OpenConnection();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT 1";
        var first = ServerNamed(await ScalarAsync(command));
        Assert.That(first, Is.Not.EqualTo(_primary));

        first.ExecuteFailure = new IOException("connection reset by peer");
        Assert.That(await ScalarAsync(command), Is.EqualTo(_primary.Name), "the other replica may be behind what the session read");
        Assert.That(command.LastDecision?.Reason, Is.EqualTo(RoutingReason.ReadYourWrites));
        AssertNothingOutstanding();
    }

    [Test]
    public async Task A_failure_that_cannot_be_recovered_reaches_the_caller_and_ends_the_count([Values] bool yielding)
    {
        Yielding(yielding);
        await using var connection = _dataSource.OpenConnection();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT 1";
        var replica = ServerNamed(await ScalarAsync(command));

        replica.UniqueViolations.Add("SELECT 1");
        Assert.ThrowsAsync<UniqueViolationException>(() => ScalarAsync(command));
        AssertNothingOutstanding();
        Assert.That(command.LastDecision?.Target, Is.EqualTo(RouteTarget.Replica), "the statement's own error is not retried elsewhere");
    }

    [Test]
    public async Task CloseConnection_reader_of_a_command_run_again_closes_the_logical_connection()
    {
        var connection = _dataSource.OpenConnection();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT 1";
        await ScalarAsync(command);

        var reader = _async ? await command.ExecuteReaderAsync(CommandBehavior.CloseConnection) : command.ExecuteReader(CommandBehavior.CloseConnection);
        Assert.That(reader, Is.InstanceOf<RwSplitDataReader>());
        await reader.DisposeAsync();
        Assert.That(connection.State, Is.EqualTo(ConnectionState.Closed));
    }

    [Test]
    public async Task The_callers_token_reaches_the_provider()
    {
        using var cts = new CancellationTokenSource();
        await using var connection = _dataSource.OpenConnection();
        await using var command = connection.CreateCommand();
        command.CommandText = "UPDATE t SET x = 1";
        command.ExecuteNonQuery();
        if (_async)
            await command.ExecuteNonQueryAsync(cts.Token);
        else
            command.ExecuteNonQuery();
        var call = _primary.Journal.Last(c => c.Text == "UPDATE t SET x = 1");
        Assert.That(call.Async, Is.EqualTo(_async));
        Assert.That(call.Token, Is.EqualTo(_async ? cts.Token : CancellationToken.None));
    }
}

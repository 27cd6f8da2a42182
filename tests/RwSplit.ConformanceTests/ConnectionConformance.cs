using System;
using System.Collections.Generic;
using System.Data;
using System.Threading.Tasks;
using NUnit.Framework;

namespace RwSplit.ConformanceTests;

[EveryProvider]
public sealed class ConnectionConformance(Provider provider) : Conformance(provider)
{
    [Test]
    public async Task State_changes_raise_StateChange_in_order_and_Close_twice_is_harmless()
    {
        await using var connection = CreateConnection();
        var events = new List<(ConnectionState From, ConnectionState To)>();
        connection.StateChange += (_, e) => events.Add((e.OriginalState, e.CurrentState));
        await connection.OpenAsync();
        Assert.That(connection.State, Is.EqualTo(ConnectionState.Open));
        await connection.CloseAsync();
        connection.Close();
        connection.Open();
        connection.Close();
        Assert.That(events, Is.EqualTo(new[]
        {
            (ConnectionState.Closed, ConnectionState.Open), (ConnectionState.Open, ConnectionState.Closed),
            (ConnectionState.Closed, ConnectionState.Open), (ConnectionState.Open, ConnectionState.Closed),
        }));
    }

    [Test]
    public async Task Opening_an_open_connection_throws_InvalidOperationException()
    {
        await using var connection = await OpenAsync();
        Assert.Throws<InvalidOperationException>(() => connection.Open());
        Assert.That(connection.State, Is.EqualTo(ConnectionState.Open), "still open");
    }

    [Test]
    public void Dispose_closes_and_a_disposed_connection_cannot_be_opened()
    {
        var connection = CreateConnection();
        connection.Open();
        var disposed = 0;
        connection.Disposed += (_, _) => disposed++;
        connection.Dispose();
        // Documented difference (docs/adonet-conformance.md): Npgsql does not raise Component.Disposed; RwSplit does, as
        // the base class and SqlConnection do.
        Assert.That(disposed, Is.EqualTo(Provider == Provider.RwSplit ? 1 : 0));
        Assert.That(connection.State, Is.EqualTo(ConnectionState.Closed));
        Assert.That(() => connection.Open(), Throws.InstanceOf<ObjectDisposedException>().Or.InstanceOf<InvalidOperationException>());
        connection.Dispose(); // twice is harmless
    }

    [TestCase("Host=127.0.0.1;Port=notaport")]
    [TestCase("Host=127.0.0.1;NoSuchKeyword=1")]
    [TestCase("Host='127.0.0.1")]
    public void An_invalid_connection_string_is_refused_at_assignment_and_the_previous_one_kept(string invalid)
    {
        using var connection = CreateConnection();
        var ex = Assert.Throws<ArgumentException>(() => connection.ConnectionString = invalid);
        Assert.That(ex!.Message, Does.Not.Contain("Password").IgnoreCase.And.Not.Contain(Servers.Password), "no secret in the message");
        if (Provider == Provider.Npgsql)
        {
            // Documented difference: Npgsql keeps the string it refused.
            Assert.That(connection.ConnectionString, Is.EqualTo(invalid));
            return;
        }

        // RwSplit keeps the previous one, as SqlConnection does, so the connection still opens.
        Assert.That(connection.ConnectionString, Is.EqualTo(ConnectionString), "the previous string stays");
        connection.Open();
        Assert.That(connection.State, Is.EqualTo(ConnectionState.Open));
    }

    [Test]
    public async Task After_open_the_connection_string_hides_the_password()
    {
        await using var connection = await OpenAsync();
        Assert.That(connection.ConnectionString, Does.Not.Contain("Password=").IgnoreCase);
    }

    [Test]
    public async Task Database_DataSource_and_ServerVersion_describe_the_primary()
    {
        await using var connection = await OpenAsync();
        Assert.That(connection.Database, Is.EqualTo(new Npgsql.NpgsqlConnectionStringBuilder(Servers.Cluster.PrimaryConnectionString).Database));
        Assert.That(connection.ServerVersion, Does.StartWith("15"));
        Assert.That(connection.DataSource, Does.Contain("127.0.0.1"));
    }

    [Test]
    public void Operations_that_need_an_open_connection_throw_InvalidOperationException_on_a_closed_one()
    {
        using var connection = CreateConnection();
        Assert.Throws<InvalidOperationException>(() => connection.BeginTransaction());
        Assert.Throws<InvalidOperationException>(() => connection.ChangeDatabase("postgres"));
        using var command = Command(connection, "SELECT 1");
        Assert.Throws<InvalidOperationException>(() => command.ExecuteScalar());
    }

    [Test]
    public async Task ChangeDatabase_switches_the_database()
    {
        await using var connection = await OpenAsync();
        await connection.ChangeDatabaseAsync("template1");
        Assert.That(connection.Database, Is.EqualTo("template1"));
        await using var command = Command(connection, "SELECT current_database()");
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo("template1"));
    }

    [Test]
    public async Task GetSchema_lists_the_tables()
    {
        await using var connection = await OpenAsync();
        var tables = await connection.GetSchemaAsync("Tables");
        Assert.That(tables.Select($"table_name = 'conformance'"), Has.Length.EqualTo(1));
    }

    [Test]
    public async Task An_already_cancelled_token_given_to_OpenAsync()
    {
        await using var connection = CreateConnection();
        using var cancelled = new System.Threading.CancellationTokenSource();
        cancelled.Cancel();
        if (Provider == Provider.Npgsql)
        {
            // Documented difference: Npgsql opens anyway (a pooled open does not look at the token).
            await connection.OpenAsync(cancelled.Token);
            Assert.That(connection.State, Is.EqualTo(ConnectionState.Open));
            return;
        }

        // RwSplit returns a cancelled task, as DbConnection.OpenAsync's contract (and SqlConnection) do.
        Assert.That(async () => await connection.OpenAsync(cancelled.Token), Throws.InstanceOf<OperationCanceledException>());
        Assert.That(connection.State, Is.EqualTo(ConnectionState.Closed));
    }
}

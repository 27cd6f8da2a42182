using System;
using System.Data;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;

namespace RwSplit.ConformanceTests;

[EveryProvider]
public sealed class CommandConformance(Provider provider) : Conformance(provider)
{
    [Test]
    public void A_new_command_has_the_provider_s_defaults()
    {
        using var command = Factory.CreateCommand()!;
        Assert.That(command.CommandText, Is.Empty);
        Assert.That(command.CommandTimeout, Is.EqualTo(30));
        Assert.That(command.CommandType, Is.EqualTo(CommandType.Text));
        Assert.That(command.Connection, Is.Null);
        Assert.That(command.Transaction, Is.Null);
        Assert.That(command.Parameters, Is.Empty);
        Assert.That(command.UpdatedRowSource, Is.EqualTo(UpdateRowSource.Both));
    }

    [Test]
    public void Executing_without_a_connection_or_without_text_throws_InvalidOperationException()
    {
        using var command = Factory.CreateCommand()!;
        command.CommandText = "SELECT 1";
        Assert.Throws<InvalidOperationException>(() => command.ExecuteScalar());
        using var connection = CreateConnection();
        connection.Open();
        using var empty = connection.CreateCommand();
        Assert.Throws<InvalidOperationException>(() => empty.ExecuteNonQuery());
    }

    [Test]
    public async Task Every_execution_mode_returns_what_the_provider_returns([Values] bool async)
    {
        await using var connection = await OpenAsync();
        await using var scalar = Command(connection, "SELECT name FROM conformance WHERE id = @id");
        Parameter(scalar, "id", 3);
        Assert.That(async ? await scalar.ExecuteScalarAsync() : scalar.ExecuteScalar(), Is.EqualTo("row 3"));

        await using var none = Command(connection, "SELECT name FROM conformance WHERE id = -1");
        Assert.That(async ? await none.ExecuteScalarAsync() : none.ExecuteScalar(), Is.Null, "no row: null, not DBNull");

        await using var update = Command(connection, "UPDATE conformance SET seen = seen WHERE id <= 4");
        Assert.That(async ? await update.ExecuteNonQueryAsync() : update.ExecuteNonQuery(), Is.EqualTo(4));
        await using var select = Command(connection, "SELECT 1");
        Assert.That(async ? await select.ExecuteNonQueryAsync() : select.ExecuteNonQuery(), Is.EqualTo(-1), "a SELECT affects -1 rows");

        await using var read = Command(connection, "SELECT id, name, amount, seen FROM conformance WHERE id <= 2 ORDER BY id; SELECT count(*) FROM conformance");
        await using var reader = async ? await read.ExecuteReaderAsync() : read.ExecuteReader();
        Assert.That(reader.HasRows, Is.True);
        Assert.That(reader.FieldCount, Is.EqualTo(4));
        Assert.That(reader.GetName(1), Is.EqualTo("name"));
        Assert.That(reader.GetFieldType(2), Is.EqualTo(typeof(decimal)));
        Assert.That(reader.GetDataTypeName(0), Is.EqualTo("integer"));
        Assert.That(reader.GetOrdinal("seen"), Is.EqualTo(3));
        Assert.That(async ? await reader.ReadAsync() : reader.Read(), Is.True);
        Assert.That(reader.GetInt32(0), Is.EqualTo(1));
        Assert.That(reader.GetString(1), Is.EqualTo("row 1"));
        Assert.That(reader.GetDecimal(2), Is.EqualTo(1.5m));
        Assert.That(reader.GetFieldValue<DateTime>(3), Is.EqualTo(new DateTime(2026, 1, 2, 0, 0, 0, DateTimeKind.Utc)));
        Assert.That(reader.IsDBNull(2), Is.False);
        Assert.That(async ? await reader.ReadAsync() : reader.Read(), Is.True);
        Assert.That(async ? await reader.ReadAsync() : reader.Read(), Is.False);
        Assert.That(async ? await reader.NextResultAsync() : reader.NextResult(), Is.True);
        Assert.That(async ? await reader.ReadAsync() : reader.Read(), Is.True);
        Assert.That(reader.GetInt64(0), Is.EqualTo(10));
        Assert.That(async ? await reader.NextResultAsync() : reader.NextResult(), Is.False);
    }

    [Test]
    public async Task The_connection_of_a_command_with_an_open_reader_cannot_be_replaced_or_removed()
    {
        await using var connection = await OpenAsync();
        await using var other = await OpenAsync();
        await using var command = Command(connection, "SELECT id FROM conformance ORDER BY id");
        await using var reader = await command.ExecuteReaderAsync();
        Assert.That(await reader.ReadAsync(), Is.True);
        Assert.Throws<InvalidOperationException>(() => command.Connection = other);
        Assert.Throws<InvalidOperationException>(() => command.Connection = null);
        Assert.That(command.Connection, Is.SameAs(connection), "the command keeps its connection");
        Assert.That(await reader.ReadAsync(), Is.True, "and the reader goes on");
    }

    [Test]
    public async Task A_reader_with_CloseConnection_closes_the_connection_when_it_closes()
    {
        await using var connection = await OpenAsync();
        await using var command = Command(connection, "SELECT id FROM conformance ORDER BY id LIMIT 1");
        var reader = await command.ExecuteReaderAsync(CommandBehavior.CloseConnection);
        Assert.That(await reader.ReadAsync(), Is.True);
        await reader.DisposeAsync();
        Assert.That(reader.IsClosed, Is.True);
        Assert.That(connection.State, Is.EqualTo(ConnectionState.Closed));
    }

    [Test]
    public async Task Output_and_null_parameters_work_as_the_provider_s()
    {
        await using var connection = await OpenAsync();
        await using var command = Command(connection, "SELECT @a::int + 1, @b::text IS NULL");
        Parameter(command, "a", 41);
        Parameter(command, "b", DBNull.Value);
        await using var reader = await command.ExecuteReaderAsync();
        Assert.That(await reader.ReadAsync(), Is.True);
        Assert.That(reader.GetInt32(0), Is.EqualTo(42));
        Assert.That(reader.GetBoolean(1), Is.True);
    }

    [Test]
    public async Task Prepare_then_execute_twice()
    {
        await using var connection = await OpenAsync();
        await using var command = Command(connection, "SELECT name FROM conformance WHERE id = @id");
        var id = Parameter(command, "id", 1);
        await command.PrepareAsync();
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo("row 1"));
        id.Value = 2;
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo("row 2"));
    }

    [Test]
    public async Task Cancel_with_nothing_running_does_nothing_and_a_cancelled_token_cancels_the_execution()
    {
        await using var connection = await OpenAsync();
        await using var command = Command(connection, "SELECT 1");
        command.Cancel();
        Assert.That(Convert.ToInt32(await command.ExecuteScalarAsync()), Is.EqualTo(1));
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.That(async () => await command.ExecuteScalarAsync(cancelled.Token), Throws.InstanceOf<OperationCanceledException>());
        Assert.That(Convert.ToInt32(await command.ExecuteScalarAsync()), Is.EqualTo(1), "the connection is still usable");
    }

    [Test]
    public async Task A_statement_error_surfaces_as_the_provider_s_exception_and_the_connection_stays_usable()
    {
        await using var connection = await OpenAsync();
        await using var command = Command(connection, "SELECT * FROM no_such_table");
        var ex = Assert.ThrowsAsync<Npgsql.PostgresException>(async () => await command.ExecuteScalarAsync());
        Assert.That(ex!.SqlState, Is.EqualTo("42P01"));
        command.CommandText = "SELECT 2";
        Assert.That(Convert.ToInt32(await command.ExecuteScalarAsync()), Is.EqualTo(2));
    }

    [Test]
    public async Task A_command_timeout_ends_a_long_statement_with_the_provider_s_timeout()
    {
        await using var connection = await OpenAsync();
        await using var command = Command(connection, "SELECT pg_sleep(5)");
        command.CommandTimeout = 1;
        var ex = Assert.ThrowsAsync<Npgsql.NpgsqlException>(async () => await command.ExecuteNonQueryAsync());
        Assert.That(ex!.InnerException, Is.InstanceOf<TimeoutException>());
    }
}

using System;
using System.Data;
using System.Linq;
using System.Net.Sockets;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Data.SqlClient;
using NUnit.Framework;
using RwSplit.Tds;

namespace RwSplit.TdsTests;

/// <summary>
/// The scripted TDS server itself, driven by the real Microsoft.Data.SqlClient without RwSplit: if these pass, a
/// failure in the RwSplit tests is RwSplit's, not the test server's.
/// </summary>
[TestFixture]
[Category("Tds")]
public sealed class TdsServerTests : TdsTestBase
{
    private static readonly DateTime Moment = new DateTime(2024, 2, 29, 13, 45, 30, 123, DateTimeKind.Unspecified).AddTicks(4567);

    private SqlConnection Connect(TdsServer server, string extra = "") => new(ConnectionString(server, extra));

    [Test]
    public async Task SqlClient_logs_in_and_reads_every_column_type([Values] bool async)
    {
        Primary.OnText("SELECT * FROM dbo.samples", TdsReply.Rows(new TdsResultSet(
                TdsColumn.Int("id"), TdsColumn.BigInt("big"), TdsColumn.NVarChar("name", 50), TdsColumn.Bit("flag"),
                TdsColumn.DateTime2("at"), TdsColumn.Decimal("amount", 18, 4), TdsColumn.Float("ratio"))
            .Row(1, 9_000_000_000L, "Zoë ✓", true, Moment, 12345.6789m, 0.25)
            .Row(-2, long.MinValue, "", false, DateTime.MinValue, -0.0001m, double.MaxValue)
            .Row(null, null, null, null, null, null, null)));

        await using var connection = Connect(Primary);
        await OpenAsync(connection, async);
        Assert.That(connection.ServerVersion, Is.EqualTo("16.00.1000"));
        Assert.That(connection.Database, Is.EqualTo("app"));
        await using var command = new SqlCommand("SELECT * FROM dbo.samples", connection);
        await using var reader = await command.ExecuteReaderAsync();

        Assert.That(Enumerable.Range(0, reader.FieldCount).Select(reader.GetDataTypeName), Is.EqualTo(new[] { "int", "bigint", "nvarchar", "bit", "datetime2", "decimal", "float" }));
        Assert.That(await ReadAsync(reader, async), Is.True);
        Assert.That(reader.GetInt32(0), Is.EqualTo(1));
        Assert.That(reader.GetInt64(1), Is.EqualTo(9_000_000_000L));
        Assert.That(reader.GetString(2), Is.EqualTo("Zoë ✓"));
        Assert.That(reader.GetBoolean(3), Is.True);
        Assert.That(reader.GetDateTime(4), Is.EqualTo(Moment));
        Assert.That(reader.GetDecimal(5), Is.EqualTo(12345.6789m));
        Assert.That(reader.GetDouble(6), Is.EqualTo(0.25));
        Assert.That(await ReadAsync(reader, async), Is.True);
        Assert.That(reader.GetInt32(0), Is.EqualTo(-2));
        Assert.That(reader.GetInt64(1), Is.EqualTo(long.MinValue));
        Assert.That(reader.GetString(2), Is.Empty);
        Assert.That(reader.GetBoolean(3), Is.False);
        Assert.That(reader.GetDateTime(4), Is.EqualTo(DateTime.MinValue));
        Assert.That(reader.GetDecimal(5), Is.EqualTo(-0.0001m));
        Assert.That(reader.GetDouble(6), Is.EqualTo(double.MaxValue));
        Assert.That(await ReadAsync(reader, async), Is.True);
        Assert.That(Enumerable.Range(0, reader.FieldCount).All(reader.IsDBNull), Is.True);
        Assert.That(await ReadAsync(reader, async), Is.False);
        Assert.That(reader.RecordsAffected, Is.EqualTo(-1));

        var login = Primary.ApplicationLogins.Single().Login!;
        Assert.That(login.ApplicationName, Is.EqualTo(ApplicationName));
        Assert.That(login.Database, Is.EqualTo("app"));
        Assert.That(login.UserName, Is.EqualTo("app"));
        Assert.That(login.ReadOnlyIntent, Is.False);
        Assert.That(login.TdsVersion, Is.EqualTo(0x74000004u), "TDS 7.4");
    }

    [Test]
    public async Task Parameters_arrive_through_sp_executesql_with_their_types_and_values([Values] bool async)
    {
        Primary.On(TdsMatch.Exact("SELECT @i + 1")).Reply(r => TdsReply.Scalar(TdsType.Int, (int)r.Parameter("@i")! + 1));
        await using var connection = Connect(Primary);
        await OpenAsync(connection, async);
        await using var command = new SqlCommand("SELECT @i + 1", connection);
        command.Parameters.Add("@i", SqlDbType.Int).Value = 41;
        command.Parameters.Add("@b", SqlDbType.BigInt).Value = 1L << 40;
        command.Parameters.Add("@s", SqlDbType.NVarChar, 20).Value = "héllo";
        command.Parameters.Add("@max", SqlDbType.NVarChar, -1).Value = new string('x', 5000);
        command.Parameters.Add("@f", SqlDbType.Bit).Value = true;
        command.Parameters.Add("@t", SqlDbType.DateTime2).Value = Moment;
        command.Parameters.Add(new SqlParameter("@d", SqlDbType.Decimal) { Precision = 10, Scale = 3, Value = -1234.567m });
        command.Parameters.Add("@g", SqlDbType.UniqueIdentifier).Value = Guid.Parse("0f8fad5b-d9cb-469f-a165-70867728950e");
        command.Parameters.Add("@n", SqlDbType.Int).Value = DBNull.Value;
        command.Parameters.Add("@x", SqlDbType.Float).Value = 1.5;
        command.Parameters.Add("@dt", SqlDbType.DateTime).Value = new DateTime(2020, 1, 2, 3, 4, 5, 500);
        command.Parameters.Add("@date", SqlDbType.Date).Value = new DateTime(1999, 12, 31);
        command.Parameters.Add("@bin", SqlDbType.VarBinary, 10).Value = new byte[] { 1, 2, 255 };

        Assert.That(await ScalarAsync(command, async), Is.EqualTo(42));

        var rpc = Primary.ApplicationRequests.Single();
        Assert.That(rpc.Kind, Is.EqualTo(TdsRequestKind.Rpc));
        Assert.That(rpc.Procedure, Is.EqualTo("sp_executesql"));
        Assert.That(rpc.Text, Is.EqualTo("SELECT @i + 1"));
        Assert.That(rpc.ParameterDeclarations, Does.StartWith("@i int,@b bigint,@s nvarchar(20)"));
        Assert.That(rpc.Parameters.Select(p => p.Name), Is.EqualTo(new[] { "@i", "@b", "@s", "@max", "@f", "@t", "@d", "@g", "@n", "@x", "@dt", "@date", "@bin" }));
        Assert.That(rpc.Parameter("i"), Is.EqualTo(41));
        Assert.That(rpc.Parameter("b"), Is.EqualTo(1L << 40));
        Assert.That(rpc.Parameter("s"), Is.EqualTo("héllo"));
        Assert.That(rpc.Parameter("max"), Is.EqualTo(new string('x', 5000)));
        Assert.That(rpc.Parameters.Single(p => p.Name == "@max").Type.Name, Is.EqualTo("nvarchar(max)"));
        Assert.That(rpc.Parameter("f"), Is.EqualTo(true));
        Assert.That(rpc.Parameter("t"), Is.EqualTo(Moment));
        Assert.That(rpc.Parameter("d"), Is.EqualTo(-1234.567m));
        Assert.That(rpc.Parameters.Single(p => p.Name == "@d").Type.Name, Is.EqualTo("numeric(10,3)"), "SqlClient sends decimals as NUMERICN");
        Assert.That(rpc.Parameter("g"), Is.EqualTo(Guid.Parse("0f8fad5b-d9cb-469f-a165-70867728950e")));
        Assert.That(rpc.Parameters.Single(p => p.Name == "@n").Value, Is.Null);
        Assert.That(rpc.Parameter("x"), Is.EqualTo(1.5));
        Assert.That(rpc.Parameter("dt"), Is.EqualTo(new DateTime(2020, 1, 2, 3, 4, 5, 500)));
        Assert.That(rpc.Parameter("date"), Is.EqualTo(new DateTime(1999, 12, 31)));
        Assert.That(rpc.Parameter("bin"), Is.EqualTo(new byte[] { 1, 2, 255 }));
    }

    [Test]
    public async Task Stored_procedure_call_returns_rows_output_parameters_and_return_status([Values] bool async)
    {
        Primary.On(TdsMatch.Procedure("dbo.CountOrders")).Reply(r => TdsReply.Rows(new TdsResultSet(TdsColumn.Int("id")).Row(7).Row(8))
            .Then(TdsReply.Affected(3))
            .WithOutput("@total", (int)r.Parameter("@customer")! * 100)
            .WithReturnStatus(5));
        await using var connection = Connect(Primary);
        await OpenAsync(connection, async);
        await using var command = new SqlCommand("dbo.CountOrders", connection) { CommandType = CommandType.StoredProcedure };
        command.Parameters.Add("@customer", SqlDbType.Int).Value = 4;
        var total = command.Parameters.Add("@total", SqlDbType.Int);
        total.Direction = ParameterDirection.Output;
        var status = command.Parameters.Add("@status", SqlDbType.Int);
        status.Direction = ParameterDirection.ReturnValue;

        await using (var reader = await ReaderAsync(command, async))
        {
            Assert.That(await ReadAsync(reader, async), Is.True);
            Assert.That(reader.GetInt32(0), Is.EqualTo(7));
            Assert.That(await ReadAsync(reader, async), Is.True);
            Assert.That(await ReadAsync(reader, async), Is.False);
            Assert.That(await reader.NextResultAsync(), Is.False);
            Assert.That(reader.RecordsAffected, Is.EqualTo(3));
        }

        Assert.That(total.Value, Is.EqualTo(400));
        Assert.That(status.Value, Is.EqualTo(5));
        var call = Primary.ApplicationRequests.Single();
        Assert.That(call.Procedure, Is.EqualTo("dbo.CountOrders"));
        Assert.That(call.Text, Is.Null);
        Assert.That(call.Parameters.Select(p => (p.Name, p.IsOutput)), Is.EqualTo(new[] { ("@customer", false), ("@total", true) }));
    }

    [Test]
    public async Task Row_counts_errors_and_messages_reach_SqlClient_as_the_server_sent_them([Values] bool async)
    {
        Primary.On(TdsMatch.Regex(@"^UPDATE dbo\.t SET a = \d+$")).Reply(TdsReply.Affected(12));
        Primary.OnText("EXEC dbo.Fails", TdsReply.Info(50001, "about to fail").Then(TdsReply.Error(2627, "Violation of PRIMARY KEY constraint 'pk_t'.", 14, 1)));
        await using var connection = Connect(Primary);
        await OpenAsync(connection, async);
        string? info = null;
        connection.InfoMessage += (_, e) => info = e.Message;
        await using var command = new SqlCommand("UPDATE dbo.t SET a = 1", connection);
        Assert.That(await NonQueryAsync(command, async), Is.EqualTo(12));

        command.CommandText = "EXEC dbo.Fails";
        var ex = Assert.ThrowsAsync<SqlException>(async () => await NonQueryAsync(command, async))!;
        Assert.That((ex.Number, ex.Class, ex.State), Is.EqualTo((2627, (byte)14, (byte)1)));
        Assert.That(ex.Message, Does.Contain("pk_t"));
        Assert.That(info, Is.EqualTo("about to fail").Or.Null, "SqlClient folds infos into the exception when an error follows");

        command.CommandText = "SELECT nothing FROM nowhere";
        ex = Assert.ThrowsAsync<SqlException>(async () => await ScalarAsync(command, async))!;
        Assert.That(ex.Number, Is.EqualTo(50000));
        Assert.That(ex.Message, Does.Contain("no rule for this SQL batch: \"SELECT nothing FROM nowhere\""));
        Assert.That(connection.State, Is.EqualTo(ConnectionState.Open), "an unmatched statement is an ordinary error");
        command.CommandText = "SELECT @@SERVERNAME";
        Assert.That(await ScalarAsync(command, async), Is.EqualTo("sql-primary"));
    }

    [Test]
    public async Task Transaction_requests_carry_descriptors_and_savepoints([Values] bool async)
    {
        Primary.On(TdsMatch.Prefix("INSERT")).Reply(TdsReply.Affected(1));
        await using var connection = Connect(Primary);
        await OpenAsync(connection, async);
        await using (var transaction = (SqlTransaction)(async ? await connection.BeginTransactionAsync(IsolationLevel.Serializable) : connection.BeginTransaction(IsolationLevel.Serializable)))
        {
            await using var command = new SqlCommand("INSERT dbo.t VALUES (1)", connection, transaction);
            await NonQueryAsync(command, async);
            transaction.Save("before_two");
            command.CommandText = "INSERT dbo.t VALUES (2)";
            await NonQueryAsync(command, async);
            transaction.Rollback("before_two");
            if (async)
                await transaction.CommitAsync();
            else
                transaction.Commit();
        }

        await using (var transaction = connection.BeginTransaction())
            transaction.Rollback();

        var requests = Primary.ApplicationRequests;
        Assert.That(requests.Select(r => r.Kind), Is.EqualTo(new[]
        {
            TdsRequestKind.BeginTransaction, TdsRequestKind.SqlBatch, TdsRequestKind.SaveTransaction, TdsRequestKind.SqlBatch,
            TdsRequestKind.RollbackTransaction, TdsRequestKind.CommitTransaction, TdsRequestKind.BeginTransaction, TdsRequestKind.RollbackTransaction,
        }), Primary.Dump());
        var first = requests[0].StartedTransaction!.Value;
        Assert.That(requests[0].IsolationLevel, Is.EqualTo(4), "serializable");
        Assert.That(requests.Skip(1).Take(5).Select(r => r.TransactionDescriptor), Is.All.EqualTo(first));
        Assert.That(requests[2].Text, Is.EqualTo("before_two"));
        Assert.That(requests[4].Text, Is.EqualTo("before_two"));
        Assert.That(requests[4].Outcome, Is.EqualTo("rolled back to savepoint"));
        Assert.That(requests[5].Outcome, Is.EqualTo("committed"));
        Assert.That(requests[6].TransactionDescriptor, Is.Zero);
        Assert.That(requests[7].TransactionDescriptor, Is.EqualTo(requests[6].StartedTransaction).And.Not.EqualTo(first));
    }

    [Test]
    public async Task Commit_can_be_applied_with_its_reply_lost([Values] bool async)
    {
        // What the distributed-transaction tests need for "the last-resource commit with the reply lost".
        Primary.On(TdsMatch.Where(r => r.Kind == TdsRequestKind.CommitTransaction, "commit")).Reply(TdsReply.LoseReply());
        await using var connection = Connect(Primary);
        await OpenAsync(connection, async);
        var transaction = connection.BeginTransaction();
        Assert.That(() => transaction.Commit(), Throws.InstanceOf<SqlException>().Or.InstanceOf<InvalidOperationException>());
        var commit = Primary.ApplicationRequests.Single(r => r.Kind == TdsRequestKind.CommitTransaction);
        Assert.That(commit.Outcome, Is.EqualTo("committed; reply lost"));
        Assert.That(commit.TransactionDescriptor, Is.EqualTo(Primary.ApplicationRequests[0].StartedTransaction));
    }

    [Test]
    public async Task Prepared_commands_use_sp_prepexec_then_sp_execute([Values] bool async)
    {
        Primary.OnText("SELECT @id * 2", TdsReply.Scalar(TdsType.Int, 84));
        await using var connection = Connect(Primary);
        await OpenAsync(connection, async);
        await using var command = new SqlCommand("SELECT @id * 2", connection);
        command.Parameters.Add("@id", SqlDbType.Int).Value = 42;
        if (async)
            await command.PrepareAsync();
        else
            command.Prepare();
        Assert.That(await ScalarAsync(command, async), Is.EqualTo(84));
        command.Parameters["@id"].Value = 43;
        Assert.That(await ScalarAsync(command, async), Is.EqualTo(84));

        var calls = Primary.ApplicationRequests;
        Assert.That(calls.Select(r => (r.Procedure, r.Text, r.Parameter("@id"))), Is.EqualTo(new[] { ("sp_prepexec", "SELECT @id * 2", (object)42), ("sp_execute", "SELECT @id * 2", (object)43) }));
    }

    [Test]
    public async Task Pooled_connections_log_in_once_and_reset_on_reuse([Values] bool async)
    {
        for (var i = 0; i < 3; i++)
        {
            await using var connection = Connect(Primary);
            await OpenAsync(connection, async);
            await using var command = new SqlCommand("SELECT @@SERVERNAME", connection);
            Assert.That(await ScalarAsync(command, async), Is.EqualTo("sql-primary"));
        }

        Assert.That(Primary.ApplicationLogins, Has.Count.EqualTo(1));
        Assert.That(Primary.ApplicationRequests.Select(r => r.ConnectionId).Distinct().Count(), Is.EqualTo(1));
        Assert.That(Primary.ApplicationRequests.Select(r => r.ResetConnection), Is.EqualTo(new[] { false, true, true }));
    }

    [Test]
    public async Task Command_timeout_and_cancellation_send_an_attention_that_ends_a_delayed_request([Values] bool async)
    {
        Primary.OnText("WAITFOR DELAY '00:01'", TdsReply.Empty.WithDelay(TimeSpan.FromSeconds(30)));
        await using var connection = Connect(Primary);
        await OpenAsync(connection, async);
        await using var command = new SqlCommand("WAITFOR DELAY '00:01'", connection) { CommandTimeout = 1 };
        var started = DateTime.UtcNow;
        if (async)
        {
            using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
            Assert.That(async () => await command.ExecuteNonQueryAsync(cancel.Token), Throws.InstanceOf<Exception>());
        }
        else
        {
            var ex = Assert.Throws<SqlException>(() => command.ExecuteNonQuery())!;
            Assert.That(ex.Number, Is.EqualTo(-2), "timeout");
        }

        Assert.That(DateTime.UtcNow - started, Is.LessThan(TimeSpan.FromSeconds(10)));
        Assert.That(Primary.Journal.Count(r => r.Kind == TdsRequestKind.Attention), Is.EqualTo(1));
        Assert.That(connection.State, Is.EqualTo(ConnectionState.Open));
        command.CommandText = "SELECT @@SERVERNAME";
        Assert.That(await ScalarAsync(command, async), Is.EqualTo("sql-primary"), "the connection is usable after the attention");
    }

    [Test]
    public async Task Response_delay_slows_every_reply()
    {
        Primary.ResponseDelay = TimeSpan.FromMilliseconds(300);
        await using var connection = Connect(Primary);
        await connection.OpenAsync();
        await using var command = new SqlCommand("SELECT @@SERVERNAME", connection);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo("sql-primary"));
        Assert.That(watch.Elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(280)));
    }

    [Test]
    public async Task Several_servers_answer_with_their_own_identity_and_role()
    {
        await using var secondPrimary = TdsServer.Start("sql-second-primary");
        foreach (var server in new[] { Primary, Replica1, Replica2, secondPrimary })
        {
            await using var connection = Connect(server, ";ApplicationIntent=ReadOnly");
            await connection.OpenAsync();
            await using var command = new SqlCommand("SELECT @@SERVERNAME", connection);
            Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo(server.Name));
            command.CommandText = RwSplit.SqlServer.SqlServerDialect.Instance.Replication.HealthProbeQuery;
            await using var reader = await command.ExecuteReaderAsync();
            Assert.That(await reader.ReadAsync(), Is.True);
            Assert.That(reader.GetBoolean(0), Is.EqualTo(server.Role == TdsServerRole.Secondary));
            Assert.That(reader.IsDBNull(1) && reader.IsDBNull(2) && reader.IsDBNull(3), Is.True, "no VIEW SERVER STATE by default");
            Assert.That(server.ApplicationLogins.Single().Login!.ReadOnlyIntent, Is.True);
        }

        Assert.That(new[] { Primary.Port, Replica1.Port, Replica2.Port, secondPrimary.Port }.Distinct().Count(), Is.EqualTo(4));
    }

    [Test]
    public async Task Refused_and_dropped_connections_fail_in_SqlClient_and_recover()
    {
        Primary.OnText("SELECT id FROM dbo.big", TdsReply.Rows(new TdsResultSet(TdsColumn.Int("id")).Row(1).Row(2).Row(3)).StallAfterRows(2));
        Primary.RefuseConnections = true;
        await using (var refused = Connect(Primary, ";Connect Timeout=1"))
            Assert.That(async () => await refused.OpenAsync(), Throws.InstanceOf<SqlException>());
        Assert.That(Primary.Journal, Is.Empty);

        Primary.RefuseConnections = false;
        SqlConnection.ClearAllPools();
        await using var connection = Connect(Primary, ";Pooling=false");
        await connection.OpenAsync();
        await using var command = new SqlCommand("SELECT id FROM dbo.big", connection);
        await using var reader = await command.ExecuteReaderAsync();
        Assert.That(await reader.ReadAsync(), Is.True);
        Assert.That(await reader.ReadAsync(), Is.True);
        Primary.DropConnections();
        // SqlClient reports the broken connection as a SqlException (class 20) or, once it closed it, as "connection is closed".
        Assert.That(async () => await reader.ReadAsync(), Throws.InstanceOf<SqlException>().Or.InstanceOf<InvalidOperationException>(), "the connection dropped after two rows");
        // Not asserted: connection.State. On the async path SqlClient may still report Open for a moment after throwing
        // its transport-level error; that is why SqlServerDialect treats severity 20 as a connection failure.

        // Closing right after the rows: SqlClient fails at ExecuteReader or at a Read, depending on timing.
        Primary.OnText("SELECT id FROM dbo.other", TdsReply.Rows(new TdsResultSet(TdsColumn.Int("id")).Row(1).Row(2)).DropAfterRows(1));
        await using var second = Connect(Primary, ";Pooling=false");
        await second.OpenAsync();
        await using var other = new SqlCommand("SELECT id FROM dbo.other", second);
        Assert.That(async () =>
        {
            await using var rows = await other.ExecuteReaderAsync();
            while (await rows.ReadAsync())
            {
            }
        }, Throws.InstanceOf<SqlException>().Or.InstanceOf<InvalidOperationException>());
    }

    [Test]
    public async Task Malformed_messages_are_reported_with_their_bytes_and_the_connection_closed()
    {
        using (var client = new TcpClient())
        {
            await client.ConnectAsync("127.0.0.1", Primary.Port);
            var stream = client.GetStream();
            await stream.WriteAsync(new byte[] { 0x55, 0x01, 0x00, 0x0A, 0x00, 0x00, 0x01, 0x00, 0xDE, 0xAD });
            Assert.That(await stream.ReadAsync(new byte[16]), Is.Zero, "the server closed the connection");
        }

        using (var client = new TcpClient())
        {
            // A PRELOGIN whose VERSION option points past the end of the message.
            await client.ConnectAsync("127.0.0.1", Primary.Port);
            var stream = client.GetStream();
            await stream.WriteAsync(new byte[] { 0x12, 0x01, 0x00, 0x0E, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x40, 0x00, 0x06, 0xFF });
            Assert.That(await stream.ReadAsync(new byte[16]), Is.Zero);
        }

        for (var i = 0; i < 50 && Primary.ProtocolErrors.Count < 2; i++)
            await Task.Delay(20);
        var errors = Primary.ProtocolErrors;
        Assert.That(errors, Has.Count.EqualTo(2));
        Assert.That(errors[0], Does.Contain("unknown or server-only packet type 0x55").And.Contain("55 01 00 0a 00 00 01 00"));
        Assert.That(errors[1], Does.Contain("malformed PRELOGIN: option 0x00 points at 64+6").And.Contain("00 00 40 00 06 ff"));
        Assert.That(Primary.Journal.Where(r => r.Kind == TdsRequestKind.Malformed).Select(r => r.Text), Is.EqualTo(errors.Select(e => e[(e.IndexOf(": ", StringComparison.Ordinal) + 2)..])));

        // The reports were expected here: clear them so that the tear-down check passes.
        Primary.ClearProtocolErrors();
    }
}

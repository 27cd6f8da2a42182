using System;
using System.Data;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Data.SqlClient;
using NUnit.Framework;
using RwSplit.Routing;
using RwSplit.Tds;

namespace RwSplit.TdsTests;

/// <summary>
/// What RwSplit does when SQL Server says no, through the real SqlClient: a secondary's read-only error (3906) on a
/// statement RwSplit took for a read, a secondary that refuses connections, and connections dropped before or after
/// the first row — and that a write is never retried on another server.
/// </summary>
[TestFixture]
[Category("Tds")]
public sealed class TdsFailureTests : TdsTestBase
{
    private static int Attempts(TdsServer server, string statement) => Count(server, statement);

    [Test]
    public async Task Read_only_error_on_a_secondary_retries_once_on_the_primary_and_is_remembered([Values] bool async, [Values] bool withParameter)
    {
        // Declared read-only by mistake: the procedure writes, so a secondary answers 3906.
        var sql = withParameter ? "EXEC dbo.RefreshTotals @day = @day" : "EXEC dbo.RefreshTotals";
        Replica1.OnText(sql, TdsReply.ReadOnlyDatabase());
        Replica2.OnText(sql, TdsReply.ReadOnlyDatabase());
        Primary.OnText(sql, TdsReply.Affected(3));
        var dataSource = CreateDataSource(o =>
        {
            o.Consistency = ReadConsistency.Eventual;
            o.ReadOnlyProcedures.Add("dbo.RefreshTotals");
        });

        await using var connection = await OpenAsync(dataSource, async);
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        if (withParameter)
            command.Parameters.Add(new SqlParameter("@day", SqlDbType.Date) { Value = new DateTime(2025, 1, 31) });
        Assert.That(await NonQueryAsync(command, async), Is.EqualTo(3));
        Assert.That(command.LastDecision?.Reason, Is.EqualTo(RoutingReason.MisrouteRetry));
        Assert.That(Attempts(Replica1, sql) + Attempts(Replica2, sql), Is.EqualTo(1), "exactly one attempt on a secondary");
        Assert.That(Attempts(Primary, sql), Is.EqualTo(1), "exactly one retry on the primary");

        // Remembered as a write: the next execution, on any connection, goes straight to the primary.
        await using var other = await OpenAsync(dataSource, async);
        await using var again = other.CreateCommand();
        again.CommandText = sql;
        if (withParameter)
            again.Parameters.Add(new SqlParameter("@day", SqlDbType.Date) { Value = new DateTime(2025, 2, 1) });
        Assert.That(await NonQueryAsync(again, async), Is.EqualTo(3));
        Assert.That(again.LastDecision?.Reason, Is.EqualTo(RoutingReason.LearnedWrite));
        Assert.That(Attempts(Replica1, sql) + Attempts(Replica2, sql), Is.EqualTo(1));
        Assert.That(Attempts(Primary, sql), Is.EqualTo(2));
        Assert.That(Primary.ApplicationRequests.Select(r => r.Kind).Distinct(), Is.EqualTo(new[] { withParameter ? TdsRequestKind.Rpc : TdsRequestKind.SqlBatch }));
    }

    [Test]
    public async Task Read_only_error_on_a_stored_procedure_call_retries_once_and_is_remembered([Values] bool async)
    {
        Replica1.OnProcedure("dbo.RefreshTotals", TdsReply.ReadOnlyDatabase());
        Replica2.OnProcedure("dbo.RefreshTotals", TdsReply.ReadOnlyDatabase());
        Primary.OnProcedure("dbo.RefreshTotals", TdsReply.Affected(3));
        var dataSource = CreateDataSource(o =>
        {
            o.Consistency = ReadConsistency.Eventual;
            o.ReadOnlyProcedures.Add("dbo.RefreshTotals");
        });

        for (var i = 0; i < 2; i++)
        {
            await using var connection = await OpenAsync(dataSource, async);
            await using var command = connection.CreateCommand();
            command.CommandType = CommandType.StoredProcedure;
            command.CommandText = "dbo.RefreshTotals";
            Assert.That(await NonQueryAsync(command, async), Is.EqualTo(3));
            Assert.That(command.LastDecision?.Reason, Is.EqualTo(i == 0 ? RoutingReason.MisrouteRetry : RoutingReason.LearnedWrite));
        }

        Assert.That(Attempts(Replica1, "dbo.RefreshTotals") + Attempts(Replica2, "dbo.RefreshTotals"), Is.EqualTo(1), "the second call went straight to the primary");
        Assert.That(Attempts(Primary, "dbo.RefreshTotals"), Is.EqualTo(2));
    }

    [Test]
    public async Task Reads_skip_a_secondary_that_refuses_connections([Values] bool async)
    {
        Replica1.RefuseConnections = true;
        var dataSource = CreateDataSource(o => o.Consistency = ReadConsistency.Eventual, replicaExtra: ";Connect Timeout=1");
        await using var connection = await OpenAsync(dataSource, async);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT @@SERVERNAME";
        for (var i = 0; i < 4; i++)
        {
            Assert.That(await ScalarAsync(command, async), Is.EqualTo("sql-replica-2"), "no error: the read moved to the other secondary");
            Assert.That(command.LastDecision?.Target, Is.EqualTo(RouteTarget.Replica));
        }

        Assert.That(Replica1.Journal, Is.Empty);
        Assert.That(dataSource.GetTopology()[1].IsAvailable, Is.False);

        // Both secondaries gone: reads use the primary, still without an error.
        Replica2.RefuseConnections = true;
        Replica2.DropConnections();
        await using var fresh = await OpenAsync(dataSource, async);
        await using var read = fresh.CreateCommand();
        read.CommandText = "SELECT @@SERVERNAME";
        Assert.That(await ScalarAsync(read, async), Is.EqualTo("sql-primary"));
        Assert.That(read.LastDecision?.Reason, Is.EqualTo(RoutingReason.NoReplicaAvailable));
    }

    [Test]
    public async Task Read_is_retried_elsewhere_when_a_secondary_drops_the_connection_before_any_row([Values] bool async, [Values] bool reader)
    {
        const string sql = "SELECT COUNT(*) FROM dbo.orders";
        var dropped = 0;
        foreach (var replica in new[] { Replica1, Replica2 })
        {
            // Whichever secondary gets the read first drops the connection; the other answers.
            replica.On(TdsMatch.Where(r => r.Text == sql && Interlocked.Exchange(ref dropped, 1) == 0, "first read")).Reply(TdsReply.Drop());
            replica.OnText(sql, TdsReply.Scalar(TdsType.NVarChar(128), replica.Name));
        }

        var dataSource = CreateDataSource(o => o.Consistency = ReadConsistency.Eventual);
        await using var connection = await OpenAsync(dataSource, async);
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        object? answer;
        if (reader)
        {
            await using var rows = await ReaderAsync(command, async);
            Assert.That(await ReadAsync(rows, async), Is.True);
            answer = rows.GetValue(0);
        }
        else
        {
            answer = await ScalarAsync(command, async);
        }

        var first = Replica1.Journal.Any(r => r.Outcome?.EndsWith("dropped on receipt", StringComparison.Ordinal) == true) ? Replica1 : Replica2;
        var second = first == Replica1 ? Replica2 : Replica1;
        Assert.That(answer, Is.EqualTo(second.Name), "the read was retried on the other secondary");
        Assert.That(Attempts(first, sql), Is.EqualTo(1));
        Assert.That(Attempts(second, sql), Is.EqualTo(1));
        Assert.That(Ran(Primary), Is.Empty);
        Assert.That(command.LastDecision?.Target, Is.EqualTo(RouteTarget.Replica));
        Assert.That(dataSource.GetTopology()[first == Replica1 ? 1 : 2].IsAvailable, Is.False, "the failed secondary is ejected");
    }

    [Test]
    public async Task Read_that_already_returned_rows_is_not_retried([Values] bool async)
    {
        const string sql = "SELECT id FROM dbo.orders";
        foreach (var replica in new[] { Replica1, Replica2 })
            replica.OnText(sql, TdsReply.Rows(new TdsResultSet(TdsColumn.Int("id")).Row(1).Row(2).Row(3)).StallAfterRows(1));
        var dataSource = CreateDataSource(o => o.Consistency = ReadConsistency.Eventual);
        await using var connection = await OpenAsync(dataSource, async);
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await using var reader = await ReaderAsync(command, async);
        Assert.That(await ReadAsync(reader, async), Is.True);
        Assert.That(reader.GetInt32(0), Is.EqualTo(1));
        Replica1.DropConnections(); // the secondary fails after the first row reached the caller
        Replica2.DropConnections();
        Assert.That(async () => await ReadAsync(reader, async), Throws.Exception, "the caller sees the failure: its rows cannot be replayed");
        Assert.That(Attempts(Replica1, sql) + Attempts(Replica2, sql), Is.EqualTo(1));
        Assert.That(Ran(Primary), Is.Empty);
    }

    [Test]
    public async Task Write_is_never_retried_on_another_server([Values] bool async)
    {
        const string sql = "UPDATE dbo.orders SET status = 4 WHERE id = 9";
        Primary.OnText(sql, TdsReply.Drop());
        var dataSource = CreateDataSource(o => o.Consistency = ReadConsistency.Eventual);
        await using var connection = await OpenAsync(dataSource, async);
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        var ex = Assert.ThrowsAsync<SqlException>(async () => await NonQueryAsync(command, async))!;
        Assert.That(ex.Class, Is.GreaterThanOrEqualTo(20), "a transport-level error");
        Assert.That(Attempts(Primary, sql), Is.EqualTo(1));
        Assert.That(Ran(Replica1).Concat(Ran(Replica2)), Is.Empty);
    }
}

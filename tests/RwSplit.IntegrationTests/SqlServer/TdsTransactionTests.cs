using System.Data;
using System.Linq;
using System.Threading.Tasks;
using Microsoft.Data.SqlClient;
using NUnit.Framework;
using RwSplit.Routing;
using RwSplit.SqlServer;
using RwSplit.Tds;

namespace RwSplit.TdsTests;

/// <summary>
/// Local transactions through RwSplit become SqlClient's own transaction manager requests on the primary (TM_BEGIN_XACT,
/// TM_COMMIT_XACT, TM_ROLLBACK_XACT, TM_SAVE_XACT), and every command inside carries the transaction's descriptor: the
/// server journal proves both. The distributed-transaction paths are not here yet (they come with the coordinator).
/// </summary>
[TestFixture]
[Category("Tds")]
public sealed class TdsTransactionTests : TdsTestBase
{
    private const string Update = "UPDATE dbo.accounts SET balance = balance - @amount WHERE id = @id";

    private RwSplitDataSource CreateScriptedDataSource()
    {
        Primary.OnText(Update, TdsReply.Affected(1));
        return CreateDataSource(o => o.Consistency = ReadConsistency.Eventual);
    }

    [Test]
    public async Task Local_transaction_pins_to_the_primary_through_SqlClients_transaction_requests([Values] bool async, [Values] bool commit)
    {
        var dataSource = CreateScriptedDataSource();
        await using var connection = await OpenAsync(dataSource, async);
        var transaction = async ? await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead) : connection.BeginTransaction(IsolationLevel.RepeatableRead);
        await using (transaction)
        {
            // RwSplit hands SqlClient its own types: a cast error would surface here.
            Assert.That(transaction.InnerTransaction, Is.InstanceOf<SqlTransaction>());
            Assert.That(transaction.GetSqlTransaction().Connection, Is.SameAs(connection.CurrentPrimaryConnection).And.InstanceOf<SqlConnection>());
            Assert.That(transaction.Connection, Is.SameAs(connection));

            await using var command = connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = "SELECT @@SERVERNAME";
            Assert.That(await ScalarAsync(command, async), Is.EqualTo("sql-primary"));
            Assert.That(command.LastDecision?.Reason, Is.EqualTo(RoutingReason.LocalTransaction));
            command.CommandText = Update;
            command.Parameters.Add(new SqlParameter("@amount", SqlDbType.Decimal) { Precision = 12, Scale = 2, Value = 10.5m });
            command.Parameters.Add(new SqlParameter("@id", SqlDbType.Int) { Value = 1 });
            Assert.That(await NonQueryAsync(command, async), Is.EqualTo(1));

            if (commit)
            {
                if (async)
                    await transaction.CommitAsync();
                else
                    transaction.Commit();
            }
            else if (async)
            {
                await transaction.RollbackAsync();
            }
            else
            {
                transaction.Rollback();
            }
        }

        // After the transaction, reads go back to the secondaries.
        await using (var read = connection.CreateCommand())
        {
            read.CommandText = "SELECT @@SERVERNAME";
            Assert.That(await ScalarAsync(read, async), Does.StartWith("sql-replica-"));
        }

        var requests = Primary.ApplicationRequests;
        Assert.That(requests.Select(r => r.Kind), Is.EqualTo(new[]
        {
            TdsRequestKind.BeginTransaction, TdsRequestKind.SqlBatch, TdsRequestKind.Rpc,
            commit ? TdsRequestKind.CommitTransaction : TdsRequestKind.RollbackTransaction,
        }), Primary.Dump());
        var descriptor = requests[0].StartedTransaction;
        Assert.That(descriptor, Is.Not.Null.And.Not.Zero);
        Assert.That(requests[0].IsolationLevel, Is.EqualTo(3), "TM isolation byte for repeatable read");
        Assert.That(requests.Skip(1).Select(r => r.TransactionDescriptor), Is.All.EqualTo(descriptor), "every request inside carries the descriptor");
        Assert.That(requests[2].Parameter("@amount"), Is.EqualTo(10.5m));
        Assert.That(requests[3].Outcome, Is.EqualTo(commit ? "committed" : "rolled back"));
        Assert.That(Replica1.ApplicationRequests.Concat(Replica2.ApplicationRequests).Select(r => r.TransactionDescriptor), Is.All.Zero);
    }

    [Test]
    public async Task Savepoints_go_to_the_primary_as_transaction_requests([Values] bool async)
    {
        var dataSource = CreateScriptedDataSource();
        await using var connection = await OpenAsync(dataSource, async);
        await using var transaction = async ? await connection.BeginTransactionAsync() : connection.BeginTransaction();
        // SqlTransaction supports Save/Rollback(name) but does not override SupportsSavepoints (false in SqlClient 7.1).
        Assert.That(transaction.SupportsSavepoints, Is.EqualTo(transaction.InnerTransaction.SupportsSavepoints));
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = Update;
        command.Parameters.Add(new SqlParameter("@amount", 1m));
        command.Parameters.Add(new SqlParameter("@id", 2));
        await NonQueryAsync(command, async);
        if (async)
            await transaction.SaveAsync("before_fee");
        else
            transaction.Save("before_fee");
        await NonQueryAsync(command, async);
        if (async)
            await transaction.RollbackAsync("before_fee");
        else
            transaction.Rollback("before_fee");
        transaction.Commit();

        var requests = Primary.ApplicationRequests;
        Assert.That(requests.Select(r => (r.Kind, r.Text)), Is.EqualTo(new[]
        {
            (TdsRequestKind.BeginTransaction, ""), (TdsRequestKind.Rpc, Update), (TdsRequestKind.SaveTransaction, "before_fee"),
            (TdsRequestKind.Rpc, Update), (TdsRequestKind.RollbackTransaction, "before_fee"), (TdsRequestKind.CommitTransaction, ""),
        }), Primary.Dump());
        Assert.That(requests[4].Outcome, Is.EqualTo("rolled back to savepoint"));
        Assert.That(requests.Skip(1).Select(r => r.TransactionDescriptor), Is.All.EqualTo(requests[0].StartedTransaction));
    }

    [Test]
    public async Task Escape_hatch_gives_SqlClients_own_connection_and_transaction([Values] bool async)
    {
        Primary.OnText("INSERT dbo.audit (note) VALUES (@note)", TdsReply.Affected(1));
        var dataSource = CreateScriptedDataSource();
        await using var connection = await OpenAsync(dataSource, async);
        await using var transaction = async ? await connection.BeginTransactionAsync() : connection.BeginTransaction();
        var sqlConnection = async ? await connection.GetSqlPrimaryConnectionAsync() : connection.GetSqlPrimaryConnection();
        Assert.That(sqlConnection.State, Is.EqualTo(ConnectionState.Open));
        await using (var raw = new SqlCommand("INSERT dbo.audit (note) VALUES (@note)", sqlConnection, transaction.GetSqlTransaction()))
        {
            raw.Parameters.AddWithValue("@note", "bulk-style work");
            Assert.That(await NonQueryAsync(raw, async), Is.EqualTo(1));
        }

        Assert.That(connection.PinnedReason, Is.Not.Null, "RwSplit cannot see what runs on the handed-out connection");
        await using (var command = connection.CreateCommand())
        {
            command.Transaction = transaction;
            command.CommandText = "SELECT @@SERVERNAME";
            Assert.That(await ScalarAsync(command, async), Is.EqualTo("sql-primary"));
        }

        transaction.Rollback();
        var requests = Primary.ApplicationRequests;
        Assert.That(requests.Select(r => r.Kind), Is.EqualTo(new[] { TdsRequestKind.BeginTransaction, TdsRequestKind.Rpc, TdsRequestKind.SqlBatch, TdsRequestKind.RollbackTransaction }));
        Assert.That(requests.Skip(1).Select(r => r.TransactionDescriptor), Is.All.EqualTo(requests[0].StartedTransaction));
        Assert.That(Primary.ApplicationLogins, Has.Count.EqualTo(1), "one physical connection to the primary");
    }
}

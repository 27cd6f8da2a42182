using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Threading.Tasks;
using System.Transactions;
using Microsoft.Data.SqlClient;
using Npgsql;
using NUnit.Framework;
using RwSplit.Routing;
using RwSplit.SqlServer;
using RwSplit.Tds;
using RwSplit.Transactions;
using RwSplit.TransferWorkload;

namespace RwSplit.IntegrationTests.Transactions;

/// <summary>
/// A transaction over a real PostgreSQL database and a scripted SQL Server (the real SqlClient against the TDS test
/// server): SQL Server cannot prepare, so it is the last resource. PostgreSQL is prepared first, the decision row is
/// inserted in the SQL Server branch's own local transaction (in the data source's own database, after the branch had
/// switched to another database of the instance), and its commit decides. The commit's reply lost leaves PostgreSQL
/// prepared and in doubt until recovery reads the decision row on the SQL Server, and never while it is unreachable.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class SqlServerLastResourceTests
{
    private const string SqlUpdate = "UPDATE dbo.accounts SET balance = balance + 100 WHERE id = @id";
    private const string SqlInsert = "INSERT INTO dbo.ledger (account, amount) VALUES (@id, 100)";
    private static readonly SqlServerDialect Dialect = SqlServerDialect.Instance;

    private Bank _bank = null!;
    private readonly RwSplitRecovery _recovery = new(); // the PostgreSQL and the SQL Server data sources: one recovery
    private RwSplitDataSource _pgFirst = null!;
    private RwSplitDataSource _pgSecond = null!;
    private TdsServer _sql = null!;
    private RwSplitDataSource _sqlApp = null!;
    private RwSplitDataSource _sqlBilling = null!;
    private readonly List<string> _prepared = [];
    private readonly List<long> _journalAtPrepare = [];

    [OneTimeSetUp]
    public async Task CreateBankAsync()
    {
        _bank = await TransactionTestSupport.BankAsync(BankTopology.TwoServers);
        (_pgFirst, _pgSecond) = _bank.CreateDataSources("rwsplit-sql-last-resource", recovery: _recovery);
    }

    [OneTimeTearDown]
    public void DisposeDataSources()
    {
        _pgFirst?.Dispose();
        _pgSecond?.Dispose();
        _recovery.Dispose();
    }

    [SetUp]
    public async Task StartAsync()
    {
        await _bank.ResetAsync();
        _sql = TdsServer.Start("sql-primary");
        _sql.On(TdsMatch.Exact(Dialect.TransactionStatements!.DatabaseIdentitySql)).Reply(r => TdsReply.Scalar(TdsType.NVarChar(300), $"{r.Server}/{r.Database}"));
        _sql.OnText(Dialect.TransactionStatements!.CreateDecisionTableSql, TdsReply.Empty);
        _sql.OnText(SqlUpdate, TdsReply.Affected(1));
        _sql.OnText(SqlInsert, TdsReply.Affected(1));
        _sqlApp = CreateSqlDataSource("app");
        _sqlBilling = CreateSqlDataSource("billing");
        _prepared.Clear();
        _journalAtPrepare.Clear();
        FaultInjection.Hook = (point, branch) =>
        {
            if (point == FaultInjection.AfterPrepare && branch is Branch prepared)
            {
                _prepared.Add(prepared.Gid!);
                _journalAtPrepare.Add(_sql.Journal.Count);
            }
        };
    }

    [TearDown]
    public async Task StopAsync()
    {
        FaultInjection.Hook = null;
        if (TestContext.CurrentContext.Result.Outcome.Status == NUnit.Framework.Interfaces.TestStatus.Failed)
            TestContext.Out.WriteLine(_sql.Dump());
        await _sqlApp.DisposeAsync();
        await _sqlBilling.DisposeAsync();
        SqlConnection.ClearAllPools();
        var errors = _sql.ProtocolErrors.ToArray();
        await _sql.DisposeAsync();
        Assert.That(errors, Is.Empty, "the TDS server reported protocol errors");
        Assert.That(await _bank.PreparedAsync(), Is.Empty, "no prepared transaction left behind");
    }

    private RwSplitDataSource CreateSqlDataSource(string database) => RwSplitDataSource.Create(o =>
    {
        o.UseSqlServer();
        o.Primary = _sql.ConnectionString(database) + ";Application Name=rwsplit-sql-last-resource;Connect Timeout=3"; // refused connections fail fast enough; logins under CI load have time
        o.Name = "sql-" + database;
        o.HealthMonitoring = false;
        o.RecoveryInterval = TimeSpan.FromDays(1);
        o.Recovery = _recovery;
    });

    private static string KeyOf(string identity) => ConsistencyToken.HashIdentity(identity).ToString("x16", CultureInfo.InvariantCulture);

    /// <summary>100 out of PostgreSQL account 1 into the SQL Server's accounts, with a ledger row in its billing database.</summary>
    private static async Task TransferAsync(RwSplitDataSource pg, RwSplitDataSource sqlApp, RwSplitDataSource sqlBilling, bool async)
    {
        await using (var connection = async ? await pg.OpenConnectionAsync() : pg.OpenConnection())
        await using (var command = connection.CreateCommand())
        {
            command.CommandText = "UPDATE bank_accounts SET balance = balance - 100 WHERE id = 1";
            Assert.That(async ? await command.ExecuteNonQueryAsync() : command.ExecuteNonQuery(), Is.EqualTo(1));
        }

        foreach (var (dataSource, sql) in new[] { (sqlApp, SqlUpdate), (sqlBilling, SqlInsert) })
        {
            await using var connection = async ? await dataSource.OpenConnectionAsync() : dataSource.OpenConnection();
            await using var command = connection.CreateCommand();
            command.CommandText = sql;
            command.Parameters.Add(new SqlParameter("@id", 1));
            Assert.That(async ? await command.ExecuteNonQueryAsync() : command.ExecuteNonQuery(), Is.EqualTo(1));
        }
    }

    private static TransactionScope Scope() => new(TransactionScopeOption.Required, new TransactionOptions { Timeout = TimeSpan.FromSeconds(30) }, TransactionScopeAsyncFlowOption.Enabled);

    private async Task<long> PgBalanceAsync()
    {
        await using var connection = new NpgsqlConnection(_bank.Database1);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT balance FROM bank_accounts WHERE id = 1", connection);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>The SQL Server branch connection's requests, from BEGIN to COMMIT/ROLLBACK, described.</summary>
    private List<string> SqlBranch()
    {
        var requests = _sql.ApplicationRequests;
        var begin = requests.Single(r => r.Kind == TdsRequestKind.BeginTransaction);
        var result = new List<string>();
        foreach (var r in requests.Where(r => r.ConnectionId == begin.ConnectionId && r.Sequence >= begin.Sequence))
        {
            result.Add(r.Kind switch
            {
                TdsRequestKind.Rpc when r.Text == Dialect.TransactionStatements!.InsertDecisionSql => $"{r.Database}: decision row {r.Parameter("@outcome")} {r.Parameter("@gtrid")}",
                TdsRequestKind.Rpc or TdsRequestKind.SqlBatch => $"{r.Database}: {r.Text}",
                _ => $"{r.Database}: {r.Kind} => {r.Outcome}",
            });
            if (r.Kind is TdsRequestKind.CommitTransaction or TdsRequestKind.RollbackTransaction)
                break;
        }

        return result;
    }

    private string DecisionGtrid() => (string)_sql.ApplicationRequests.Single(r => r.Text == Dialect.TransactionStatements!.InsertDecisionSql).Parameter("@gtrid")!;

    [Test]
    public async Task PostgreSql_is_prepared_then_the_decision_row_commits_in_the_SQL_Server_branch([Values] bool async)
    {
        _sql.OnText(Dialect.TransactionStatements!.InsertDecisionSql, TdsReply.Affected(1));
        using (var scope = Scope())
        {
            await TransferAsync(_pgFirst, _sqlApp, _sqlBilling, async);
            scope.Complete();
        }

        var gtrid = DecisionGtrid();
        Assert.That(SqlBranch(), Is.EqualTo(new[]
        {
            "app: BeginTransaction => began",
            $"app: {SqlUpdate}",
            "app: USE [billing]",
            $"billing: {SqlInsert}",
            "billing: USE [app]", // the decision belongs in the data source's own database, whose key the branch ids name
            $"app: decision row c {gtrid}",
            "app: CommitTransaction => committed",
        }), _sql.Dump());

        // PostgreSQL was prepared under an id naming the transaction and the SQL Server database that holds its decision,
        // before the decision reached the SQL Server; then committed.
        var gid = _prepared.Single().Split(':');
        Assert.That(gid[0], Is.EqualTo("rws"));
        Assert.That(gid[2], Is.EqualTo(gtrid));
        Assert.That(gid[3], Is.EqualTo(KeyOf("sql-primary/app")));
        Assert.That(_sql.Journal.Take((int)_journalAtPrepare.Single()).Select(r => r.Text), Has.None.EqualTo(Dialect.TransactionStatements!.InsertDecisionSql));
        Assert.That(await PgBalanceAsync(), Is.EqualTo(Bank.InitialBalance - 100));
        Assert.That(_sql.ApplicationLogins.Count(l => l.Login!.Database == "app"), Is.GreaterThanOrEqualTo(1));
    }

    [Test]
    public async Task Lost_reply_to_the_decision_commit_is_in_doubt_and_recovery_follows_the_SQL_Server_decision_once_reachable()
    {
        _sql.OnText(Dialect.TransactionStatements!.InsertDecisionSql, TdsReply.Affected(1));
        _sql.On(TdsMatch.Where(r => r.Kind == TdsRequestKind.CommitTransaction, "commit")).Reply(TdsReply.LoseReply()).Times(1);

        var scope = Scope();
        await TransferAsync(_pgFirst, _sqlApp, _sqlBilling, true);
        scope.Complete();
        Assert.Throws<TransactionInDoubtException>(scope.Dispose);

        var gtrid = DecisionGtrid();
        var gid = _prepared.Single();
        Assert.That(SqlBranch()[^1], Is.EqualTo("app: CommitTransaction => committed; reply lost"), "the server applied the commit, the client never heard");
        Assert.That(await _bank.PreparedAsync(), Has.Count.EqualTo(1).And.One.EndsWith(gid), "PostgreSQL waits, prepared");
        Assert.That(await PgBalanceAsync(), Is.EqualTo(Bank.InitialBalance), "not committed yet");

        // While the decision database is unreachable, recovery decides nothing, whatever the grace period.
        _sql.RefuseConnections = true;
        SqlConnection.ClearAllPools();
        var blind = await _recovery.RecoverAsync(TimeSpan.Zero, default);
        Assert.That(blind.Committed + blind.RolledBack + blind.Fenced, Is.Zero);
        Assert.That(blind.Unresolved.Single(u => u.BranchId == gid).Reason, Does.Contain("unreachable"));
        Assert.That(await _bank.PreparedAsync(), Has.Count.EqualTo(1));

        // Reachable again: the decision row says commit.
        _sql.RefuseConnections = false;
        var lookup = _sql.On(TdsMatch.Where(r => r.Text == Dialect.TransactionStatements!.SelectDecisionSql && (string?)r.Parameter("@gtrid") == gtrid, "decision lookup"))
            .Reply(TdsReply.Rows(new TdsResultSet(new TdsColumn("outcome", TdsType.VarChar(1))).Row("c")));
        var recovered = await _recovery.RecoverAsync(TimeSpan.Zero, default);
        Assert.That(recovered.Unresolved.Select(u => u.BranchId), Does.Not.Contain(gid), string.Join(" | ", recovered.Unresolved.Select(u => u.Reason)));
        Assert.That(recovered.Fenced, Is.Zero, "a decision exists: no fence");
        Assert.That(lookup.Hits, Is.GreaterThanOrEqualTo(1), "recovery read the decision row on the SQL Server (this pass, or the background pass that a new data source schedules)");
        Assert.That(await _bank.PreparedAsync(), Is.Empty);
        Assert.That(await PgBalanceAsync(), Is.EqualTo(Bank.InitialBalance - 100));
        Assert.That(_sql.ApplicationRequests.Where(r => r.Text == Dialect.TransactionStatements!.InsertDecisionSql).Select(r => r.Parameter("@outcome")), Is.EqualTo(new[] { "c" }), "recovery wrote no fence");
    }

    [Test]
    public async Task Decision_refused_as_a_duplicate_key_means_recovery_fenced_it_and_everything_rolls_back()
    {
        _sql.OnText(Dialect.TransactionStatements!.InsertDecisionSql, TdsReply.Error(2627, "Violation of PRIMARY KEY constraint 'PK_rwsplit_decisions'. Cannot insert duplicate key in object 'dbo.rwsplit_decisions'.", severity: 14));

        var scope = Scope();
        await TransferAsync(_pgFirst, _sqlApp, _sqlBilling, true);
        scope.Complete();
        var error = Assert.Throws<TransactionAbortedException>(scope.Dispose)!;

        Assert.That(error.ToString(), Does.Contain("fenced"));
        Assert.That(SqlBranch()[^1], Is.EqualTo("app: RollbackTransaction => rolled back"));
        Assert.That(_prepared, Has.Count.EqualTo(1), "PostgreSQL had been prepared");
        Assert.That(await _bank.PreparedAsync(), Is.Empty, "and was rolled back (presumed abort)");
        Assert.That(await PgBalanceAsync(), Is.EqualTo(Bank.InitialBalance));
    }
}

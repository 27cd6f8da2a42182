using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Threading.Tasks;
using System.Transactions;
using Microsoft.Data.SqlClient;
using NUnit.Framework;
using RwSplit.Routing;
using RwSplit.SqlServer;
using RwSplit.Tds;
using RwSplit.Transactions;

namespace RwSplit.TdsTests;

/// <summary>
/// The SQL Server paths of the distributed-transaction coordinator through the real SqlClient against scripted servers:
/// databases of one instance coalesced into one connection and one local transaction (database switched per command),
/// and two instances in heuristic mode (the participant's marker row, the decision's expectation row, the commit order,
/// the refusal without the opt-in, and recovery telling a committed participant from a heuristic outcome). The
/// assertions are the exact request sequences each server received on the branch connection. The last resource beside
/// a PostgreSQL branch is in <c>RwSplit.IntegrationTests.Transactions.SqlServerLastResourceTests</c> (it needs PostgreSQL).
/// </summary>
[TestFixture]
[Category("Tds")]
[NonParallelizable] // recovery is process-wide
public sealed class TdsDistributedTransactionTests : TdsTestBase
{
    private const string Update = "UPDATE dbo.accounts SET balance = balance - 10 WHERE id = @id";
    private const string Insert = "INSERT INTO dbo.ledger (account, amount) VALUES (@id, 10)";

    private static readonly SqlServerDialect Dialect = SqlServerDialect.Instance;

    private TdsServer _second = null!;

    [SetUp]
    public void StartSecondInstance() => _second = TdsServer.Start("sql-primary-b");

    [TearDown]
    public async Task StopSecondInstanceAsync()
    {
        if (TestContext.CurrentContext.Result.Outcome.Status == NUnit.Framework.Interfaces.TestStatus.Failed)
            TestContext.Out.WriteLine($"--- journal of {_second}{Environment.NewLine}{_second.Dump()}");
        var errors = _second.ProtocolErrors.ToArray();
        await _second.DisposeAsync();
        Assert.That(errors, Is.Empty, "the second instance reported protocol errors");
    }

    /// <summary>The coordinator's own statements: the database identity (per database), the decision table, decision rows.</summary>
    private static void ScriptCoordinator(TdsServer server)
    {
        server.On(TdsMatch.Exact(Dialect.TransactionStatements!.DatabaseIdentitySql)).Reply(r => TdsReply.Scalar(TdsType.NVarChar(300), $"{r.Server}/{r.Database}"));
        server.OnText(Dialect.TransactionStatements!.CreateDecisionTableSql, TdsReply.Empty);
        server.OnText(Dialect.TransactionStatements!.InsertDecisionSql, TdsReply.Affected(1));
        server.OnText(Update, TdsReply.Affected(1));
        server.OnText(Insert, TdsReply.Affected(1));
    }

    private static string KeyOf(TdsServer server, string database = "app")
        => ConsistencyToken.HashIdentity($"{server.Name}/{database}").ToString("x16", CultureInfo.InvariantCulture);

    /// <summary>Every data source of a test in one recovery, as DI would do: a branch is resolved from another's decision.</summary>
    private readonly RwSplitRecovery _recovery = new();

    private RwSplitDataSource CreateDataSource(TdsServer server, string database, bool allowHeuristic = false, Microsoft.Extensions.Logging.ILoggerFactory? loggerFactory = null)
        => Track(RwSplitDataSource.Create(o =>
        {
            o.LoggerFactory = loggerFactory;
            o.UseSqlServer();
            o.Primary = server.ConnectionString(database) + $";Application Name={ApplicationName}";
            o.Name = $"{server.Name}-{database}";
            o.HealthMonitoring = false;
            o.AllowHeuristicCommit = allowHeuristic;
            o.RecoveryInterval = TimeSpan.FromDays(1);
            o.Recovery = _recovery;
        }));

    private static async Task WriteAsync(RwSplitDataSource dataSource, string sql, bool async)
    {
        await using var connection = await OpenAsync(dataSource, async);
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Parameters.Add(new SqlParameter("@id", 1));
        Assert.That(await NonQueryAsync(command, async), Is.EqualTo(1));
    }

    private static Exception Innermost(Exception exception)
    {
        while (exception.InnerException is { } inner)
            exception = inner;
        return exception;
    }

    private static TransactionScope Scope() => new(TransactionScopeOption.Required, new TransactionOptions { Timeout = TimeSpan.FromSeconds(30) }, TransactionScopeAsyncFlowOption.Enabled);

    /// <summary>The requests of the connection that began the (only) transaction, from its BEGIN to its COMMIT or ROLLBACK.</summary>
    private static List<TdsRequest> BranchRequests(TdsServer server)
    {
        var requests = server.ApplicationRequests;
        var begins = requests.Where(r => r.Kind == TdsRequestKind.BeginTransaction).ToList();
        Assert.That(begins, Has.Count.EqualTo(1), "one local transaction on " + server + Environment.NewLine + server.Dump());
        var branch = new List<TdsRequest>();
        foreach (var request in requests.Where(r => r.ConnectionId == begins[0].ConnectionId && r.Sequence >= begins[0].Sequence))
        {
            branch.Add(request);
            if (request.Kind is TdsRequestKind.CommitTransaction or TdsRequestKind.RollbackTransaction)
                break;
        }

        return branch;
    }

    private static string Describe(TdsRequest r) => r.Kind switch
    {
        TdsRequestKind.Rpc when r.Text == Dialect.TransactionStatements!.InsertDecisionSql => $"{r.Database}: decision row {r.Parameter("@outcome")} {r.Parameter("@gtrid")}",
        TdsRequestKind.Rpc or TdsRequestKind.SqlBatch => $"{r.Database}: {r.Text}",
        _ => $"{r.Database}: {r.Kind}",
    };

    [Test]
    public async Task Databases_of_one_instance_share_one_connection_and_one_local_transaction([Values] bool async, [Values] bool complete)
    {
        ScriptCoordinator(Primary);
        var app = CreateDataSource(Primary, "app");
        var billing = CreateDataSource(Primary, "billing");

        using (var scope = Scope())
        {
            await WriteAsync(app, Update, async);
            await WriteAsync(billing, Insert, async);
            await WriteAsync(app, Update, async);
            if (complete)
                scope.Complete();
        }

        var branch = BranchRequests(Primary);
        Assert.That(branch.Select(Describe), Is.EqualTo(new[]
        {
            "app: BeginTransaction",
            $"app: {Update}",
            "app: USE [billing]",
            $"billing: {Insert}",
            "billing: USE [app]",
            $"app: {Update}",
            complete ? "app: CommitTransaction" : "app: RollbackTransaction",
        }), Primary.Dump());
        Assert.That(branch.Skip(1).Select(r => r.TransactionDescriptor), Is.All.EqualTo(branch[0].StartedTransaction), "every statement ran in the one local transaction");
        Assert.That(branch[^1].Outcome, Is.EqualTo(complete ? "committed" : "rolled back"));
        Assert.That(Primary.ApplicationLogins, Has.Count.EqualTo(1), "one physical connection for both databases");
        Assert.That(Primary.Statements, Has.None.EqualTo(Dialect.TransactionStatements!.InsertDecisionSql).And.None.EqualTo(Dialect.TransactionStatements!.DatabaseIdentitySql), "one writing branch: a plain local commit, nothing logged");
    }

    [Test]
    public async Task Two_instances_are_refused_without_the_heuristic_opt_in_and_nothing_commits([Values] bool async)
    {
        ScriptCoordinator(Primary);
        ScriptCoordinator(_second);
        var first = CreateDataSource(Primary, "app");
        var second = CreateDataSource(_second, "app");

        var scope = Scope();
        await WriteAsync(first, Update, async);
        await WriteAsync(second, Update, async);
        scope.Complete();
        var error = Assert.Throws<TransactionAbortedException>(scope.Dispose)!;

        var cause = Innermost(error);
        Assert.That(cause, Is.InstanceOf<RwSplitException>());
        Assert.That(((RwSplitException)cause).Error, Is.EqualTo(RwSplitError.DistributedTransactionUnavailable));
        Assert.That(cause.Message, Does.Contain("AllowHeuristicCommit").And.Contain("Nothing was committed"));
        foreach (var server in new[] { Primary, _second })
        {
            Assert.That(BranchRequests(server).Select(Describe), Is.EqualTo(new[] { "app: BeginTransaction", $"app: {Update}", "app: RollbackTransaction" }), server.Dump());
            Assert.That(server.Statements, Has.None.EqualTo(Dialect.TransactionStatements!.InsertDecisionSql));
        }
    }

    [Test]
    public async Task Heuristic_participant_writes_its_marker_before_the_decision_and_commits_after_it([Values] bool async)
    {
        ScriptCoordinator(Primary);
        ScriptCoordinator(_second);
        var first = CreateDataSource(Primary, "app");                           // the last resource: it did not opt in
        var second = CreateDataSource(_second, "app", allowHeuristic: true);     // commits after the decision

        using (var scope = Scope())
        {
            await WriteAsync(second, Update, async);
            await WriteAsync(first, Update, async);
            scope.Complete();
        }

        var last = BranchRequests(Primary);
        var participant = BranchRequests(_second);
        var gtrid = (string)last.Single(r => r.Text == Dialect.TransactionStatements!.InsertDecisionSql && (string)r.Parameter("@outcome")! == "c").Parameter("@gtrid")!;
        var key = KeyOf(_second);
        Assert.That(last.Select(Describe), Is.EqualTo(new[]
        {
            "app: BeginTransaction",
            $"app: {Update}",
            $"app: decision row c {gtrid}",
            $"app: decision row h {gtrid}:expect:{key}",
            "app: CommitTransaction",
        }), Primary.Dump());
        Assert.That(participant.Select(Describe), Is.EqualTo(new[]
        {
            "app: BeginTransaction",
            $"app: {Update}",
            $"app: decision row h {gtrid}:marker:{key}",
            "app: CommitTransaction",
        }), _second.Dump());
        Assert.That(last.Concat(participant).Select(r => r.Outcome).Where(o => o is "committed" or "rolled back"), Is.All.EqualTo("committed"));
        Assert.That(last.Skip(1).Select(r => r.TransactionDescriptor), Is.All.EqualTo(last[0].StartedTransaction), "the decision and the expectation are in the last resource's own transaction");
        Assert.That(participant.Skip(1).Select(r => r.TransactionDescriptor), Is.All.EqualTo(participant[0].StartedTransaction), "the marker is in the participant's own transaction");

        // The order across the two servers: the marker before the decision, the participant's commit after it.
        var marker = participant[2].GlobalSequence;
        var decisionCommit = last[^1].GlobalSequence;
        Assert.That(marker, Is.LessThan(last[2].GlobalSequence));
        Assert.That(participant[^1].GlobalSequence, Is.GreaterThan(decisionCommit));
    }

    /// <summary>
    /// Defect: the branch cached its current database, so a <c>USE other</c> the application ran inside the transaction
    /// made the decision row land in the other database (where recovery, looking in the home database, would not find
    /// it, fence, and roll back work that SQL Server committed). The live database of the connection (SqlClient tracks
    /// the server's ENVCHANGE) is what the branch switches back from.
    /// </summary>
    [Test]
    public async Task A_USE_run_inside_the_transaction_cannot_move_the_decision_row([Values] bool async)
    {
        ScriptCoordinator(Primary);
        ScriptCoordinator(_second);
        var first = CreateDataSource(Primary, "app");                           // the last resource
        var second = CreateDataSource(_second, "app", allowHeuristic: true);

        using (var scope = Scope())
        {
            await WriteAsync(second, Update, async);
            await using (var connection = await OpenAsync(first, async))
            {
                await using var update = connection.CreateCommand();
                update.CommandText = Update;
                update.Parameters.Add(new SqlParameter("@id", 1));
                await NonQueryAsync(update, async);
                await using var use = connection.CreateCommand();
                use.CommandText = "USE [billing]";
                await NonQueryAsync(use, async);
            }

            scope.Complete();
        }

        var last = BranchRequests(Primary);
        var decision = last.Single(r => r.Text == Dialect.TransactionStatements!.InsertDecisionSql && (string)r.Parameter("@outcome")! == "c");
        Assert.That(decision.Database, Is.EqualTo("app"), "the decision row is in the last resource's own database" + Environment.NewLine + Primary.Dump());
        Assert.That(last.Select(Describe), Has.Some.EqualTo("billing: USE [app]"), "switched back before the decision");
    }

    [Test]
    public async Task Heuristic_participant_lost_at_commit_is_reported_in_doubt_then_listed_by_recovery_until_acknowledged([Values] bool async)
    {
        using var telemetry = new RwSplit.TestSupport.TelemetryCapture();
        ScriptCoordinator(Primary);
        ScriptCoordinator(_second);
        var first = CreateDataSource(Primary, "app", loggerFactory: telemetry.LoggerFactory);
        var second = CreateDataSource(_second, "app", allowHeuristic: true, loggerFactory: telemetry.LoggerFactory);
        _second.On(TdsMatch.Where(r => r.Kind == TdsRequestKind.CommitTransaction, "commit")).Reply(TdsReply.Drop()); // the participant's COMMIT never applies

        var scope = Scope();
        await WriteAsync(first, Update, async);
        await WriteAsync(second, Update, async);
        scope.Complete();
        var error = Assert.Throws<TransactionInDoubtException>(scope.Dispose)!;
        Assert.That(error.InnerException?.Message, Does.Contain("heuristic").And.Contain(_second.Port.ToString(CultureInfo.InvariantCulture)), "the caller learns which participant may be missing its work");

        var gtrid = (string)Primary.ApplicationRequests.Single(r => r.Text == Dialect.TransactionStatements!.InsertDecisionSql && (string)r.Parameter("@outcome")! == "c").Parameter("@gtrid")!;
        var key = KeyOf(_second);
        var expectation = $"{gtrid}:expect:{key}";
        Assert.That(BranchRequests(Primary)[^1].Outcome, Is.EqualTo("committed"), "the decision committed");
        Assert.That(BranchRequests(_second)[^1].Outcome, Does.Not.EqualTo("committed"), "the participant's commit was lost");

        // Recovery: the decision database lists the expectation; the participant has no marker: a heuristic outcome.
        Primary.OnText(Dialect.TransactionStatements!.ListHeuristicExpectationsSql!, TdsReply.Rows(new TdsResultSet(new TdsColumn("gtrid", TdsType.VarChar(200)), TdsColumn.Int("age")).Row(expectation, 3600)));
        _second.OnText(Dialect.TransactionStatements!.SelectDecisionSql, TdsReply.Rows(new TdsResultSet(new TdsColumn("outcome", TdsType.VarChar(1)))));
        _second.OnText(Dialect.TransactionStatements!.ListHeuristicExpectationsSql!, TdsReply.Rows(new TdsResultSet(new TdsColumn("gtrid", TdsType.VarChar(200)), TdsColumn.Int("age"))));
        var result = await _recovery.RecoverAsync(TimeSpan.FromMinutes(1), default);

        var outcome = result.HeuristicOutcomes.Single();
        Assert.That(outcome.Id, Is.EqualTo(expectation));
        Assert.That(outcome.Gtrid, Is.EqualTo(gtrid));
        Assert.That(outcome.Participant, Does.Contain(_second.Port.ToString(CultureInfo.InvariantCulture)));
        Assert.That(outcome.DecisionDatabase, Does.Contain(Primary.Port.ToString(CultureInfo.InvariantCulture)));
        Assert.That(result.HeuristicConfirmed, Is.Zero);
        Assert.That(_recovery.HeuristicOutcomes.Select(h => h.Id), Does.Contain(expectation));
        var markerLookup = _second.ApplicationRequests.Single(r => r.Text == Dialect.TransactionStatements!.SelectDecisionSql);
        Assert.That(markerLookup.Parameter("@gtrid"), Is.EqualTo($"{gtrid}:marker:{key}"), "recovery looked for the participant's marker");
        Assert.That(Primary.Statements, Has.None.EqualTo(Dialect.TransactionStatements!.DeleteDecisionSql), "a heuristic outcome stays recorded until acknowledged");
        Assert.That(telemetry.Logged(3007).Single().Message, Does.Contain(gtrid).And.Contain(_second.Port.ToString(CultureInfo.InvariantCulture)), "the failed heuristic commit is logged as an error");
        var hazard = telemetry.Logged(3008).Single();
        Assert.That((hazard.Level, hazard.Message), Is.EqualTo((Microsoft.Extensions.Logging.LogLevel.Error, $"Heuristic outcome of distributed transaction {gtrid}: the decision committed on {outcome.DecisionDatabase}, but participant {outcome.Participant} has no marker row, so its work was rolled back; reconcile by hand, then call RwSplitRecovery.AcknowledgeHeuristicAsync")));
        Assert.That(telemetry.Measured("rwsplit.recovery.heuristic").Last().Value, Is.GreaterThanOrEqualTo(1));

        // The operator reconciles, then acknowledges: the expectation row goes, recovery stops listing it.
        var stored = new HashSet<string> { expectation };
        Primary.On(TdsMatch.Exact(Dialect.TransactionStatements!.DeleteDecisionSql)).Reply(r => TdsReply.Affected(stored.Remove((string)r.Parameter("@gtrid")!) ? 1 : 0));
        _second.OnText(Dialect.TransactionStatements!.DeleteDecisionSql, TdsReply.Affected(0));
        await _recovery.AcknowledgeHeuristicAsync(expectation);
        Assert.That(stored, Is.Empty, "the decision database deleted the expectation row");
        Assert.That(_recovery.HeuristicOutcomes.Select(h => h.Id), Does.Not.Contain(expectation));
        Assert.ThrowsAsync<InvalidOperationException>(() => _recovery.AcknowledgeHeuristicAsync("no-such-outcome"));
        Assert.That(telemetry.Logged(3009).Single().Message, Is.EqualTo($"Heuristic outcome {expectation} acknowledged by hand"));
    }

    [Test]
    public async Task Recovery_confirms_a_committed_heuristic_participant_and_removes_both_rows()
    {
        ScriptCoordinator(Primary);
        ScriptCoordinator(_second);
        var first = CreateDataSource(Primary, "app");
        var second = CreateDataSource(_second, "app", allowHeuristic: true);
        using (var scope = Scope())
        {
            await WriteAsync(first, Update, true);
            await WriteAsync(second, Update, true);
            scope.Complete();
        }

        var gtrid = (string)Primary.ApplicationRequests.Single(r => r.Text == Dialect.TransactionStatements!.InsertDecisionSql && (string)r.Parameter("@outcome")! == "c").Parameter("@gtrid")!;
        var key = KeyOf(_second);
        var expectation = $"{gtrid}:expect:{key}";
        var marker = $"{gtrid}:marker:{key}";
        Primary.OnText(Dialect.TransactionStatements!.ListHeuristicExpectationsSql!, TdsReply.Rows(new TdsResultSet(new TdsColumn("gtrid", TdsType.VarChar(200)), TdsColumn.Int("age")).Row(expectation, 90).Row($"{gtrid}x:expect:{key}", 5)));
        _second.OnText(Dialect.TransactionStatements!.ListHeuristicExpectationsSql!, TdsReply.Rows(new TdsResultSet(new TdsColumn("gtrid", TdsType.VarChar(200)), TdsColumn.Int("age"))));
        _second.On(TdsMatch.Where(r => r.Text == Dialect.TransactionStatements!.SelectDecisionSql && (string?)r.Parameter("@gtrid") == marker, "marker lookup")).Reply(TdsReply.Rows(new TdsResultSet(new TdsColumn("outcome", TdsType.VarChar(1))).Row("h")));
        Primary.OnText(Dialect.TransactionStatements!.DeleteDecisionSql, TdsReply.Affected(1));
        _second.OnText(Dialect.TransactionStatements!.DeleteDecisionSql, TdsReply.Affected(1));

        var result = await _recovery.RecoverAsync(TimeSpan.FromMinutes(1), default);

        Assert.That(result.HeuristicConfirmed, Is.EqualTo(1), "the 5-second-old expectation is within the grace period: its coordinator may still be committing");
        Assert.That(result.HeuristicOutcomes, Is.Empty);
        var deleteExpectation = Primary.ApplicationRequests.Single(r => r.Text == Dialect.TransactionStatements!.DeleteDecisionSql);
        var deleteMarker = _second.ApplicationRequests.Single(r => r.Text == Dialect.TransactionStatements!.DeleteDecisionSql);
        Assert.That(deleteExpectation.Parameter("@gtrid"), Is.EqualTo(expectation));
        Assert.That(deleteMarker.Parameter("@gtrid"), Is.EqualTo(marker));
        Assert.That(deleteExpectation.GlobalSequence, Is.LessThan(deleteMarker.GlobalSequence), "the expectation goes first: a crash between leaves a stray marker, never a false alarm");
    }
}

using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading.Tasks;
using System.Transactions;
using NUnit.Framework;
using RwSplit.Tests.Fakes;
using RwSplit.Transactions;

namespace RwSplit.Tests.Transactions;

/// <summary>
/// The commit protocol over recording fakes: the exact statement sequence each server receives for read-only, one-phase
/// and two-phase commits, last-resource selection, same-instance coalescing (SQL Server), and every failure before and
/// at the decision.
/// </summary>
[NonParallelizable]
public sealed class TransactionProtocolTests
{
    private readonly List<RwSplitDataSource> _dataSources = new();

    [TearDown]
    public void TearDown()
    {
        FaultInjection.Hook = null;
        foreach (var dataSource in _dataSources)
            dataSource.Dispose();
        _dataSources.Clear();
    }

    private (RwSplitDataSource DataSource, FakeServer Server) Database(FakeDialect dialect, string prefix, string database = "db", FakeServer? server = null, bool enabled = true, bool allowHeuristic = false)
    {
        server ??= FakeServer.Create(prefix);
        var dataSource = RwSplitDataSource.Create(o =>
        {
            o.UseDialect(dialect);
            o.Primary = $"Server={server.Name};Database={database}";
            o.HealthMonitoring = false;
            o.DistributedTransactions = enabled;
            o.AllowHeuristicCommit = allowHeuristic;
        });
        _dataSources.Add(dataSource);
        return (dataSource, server);
    }

    private static async Task ExecAsync(RwSplitDataSource dataSource, string sql, RwSplitDistributedTransaction? explicitTransaction = null)
    {
        await using var connection = await dataSource.OpenConnectionAsync();
        if (explicitTransaction is not null)
            connection.EnlistDistributedTransaction(explicitTransaction);
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }

    private static string[] Texts(params FakeServer[] servers)
        => servers.SelectMany(s => s.Journal).Where(c => c.Operation is "NonQuery" or "Scalar" or "Begin" or "Commit" or "Rollback" or "ChangeDatabase")
            .OrderBy(c => c.Sequence)
            .Select(c => $"{c.Server.Split('-')[0]}: {(c.Operation is "NonQuery" or "Scalar" ? Normalize(c.Text!) : c.Operation)}")
            .ToArray();

    private static string Normalize(string text)
        => System.Text.RegularExpressions.Regex.Replace(text, @"rws:[0-9a-f]+:[0-9a-f]{32}:[0-9a-f]{16}:(\d)", "rws:…:$1");

    [Test]
    public async Task Two_writing_branches_prepare_decide_in_the_last_resource_then_commit_prepared()
    {
        var (a, serverA) = Database(FakeDialect.TwoPhase, "alpha");
        var (b, serverB) = Database(FakeDialect.TwoPhase, "beta");
        using (var scope = new TransactionScope(TransactionScopeAsyncFlowOption.Enabled))
        {
            await ExecAsync(a, "UPDATE accounts SET balance = balance - 1");
            await ExecAsync(b, "UPDATE accounts SET balance = balance + 1");
            scope.Complete();
        }

        Assert.That(Texts(serverA, serverB), Is.EqualTo(new[]
        {
            "alpha: Begin",
            "alpha: UPDATE accounts SET balance = balance - 1",
            "beta: Begin",
            "beta: UPDATE accounts SET balance = balance + 1",
            "beta: MAXPREPARED",            // phase 0: beta will be prepared: can it?
            "alpha: CREATE DECISIONS",      // alpha is the last resource: its decision table
            "alpha: IDENTITY",              // and the key branch ids name it by
            "beta: PREPARE rws:…:1",
            "alpha: INSERT INTO rwsplit_decisions (gtrid, outcome, coordinator) VALUES (@gtrid, @outcome, @coordinator)",
            "alpha: Commit",                // the decision point
            "beta: COMMIT PREPARED rws:…:1",
        }));
    }

    [Test]
    public async Task A_read_only_branch_drops_out_and_a_single_writer_commits_locally_with_nothing_logged()
    {
        var (a, serverA) = Database(FakeDialect.TwoPhase, "alpha");
        var (b, serverB) = Database(FakeDialect.TwoPhase, "beta");
        using (var scope = new TransactionScope(TransactionScopeAsyncFlowOption.Enabled))
        {
            await ExecAsync(a, "UPDATE accounts SET balance = balance - 1");
            await using (var connection = await b.OpenConnectionAsync())
            await using (var read = connection.CreateCommand())
            {
                read.CommandText = "SELECT balance FROM accounts";
                await read.ExecuteScalarAsync();
            }

            scope.Complete();
        }

        var texts = Texts(serverA, serverB);
        Assert.That(texts, Has.None.Contains("PREPARE").And.None.Contains("rwsplit_decisions").And.None.Contains("CREATE DECISIONS"));
        Assert.That(texts.Count(t => t.EndsWith(": Commit", StringComparison.Ordinal)), Is.EqualTo(2), "the reader commits (drops out), the writer commits locally");
    }

    [Test]
    public async Task Logical_connections_to_one_database_share_its_branch()
    {
        var (a, serverA) = Database(FakeDialect.TwoPhase, "alpha");
        using (var scope = new TransactionScope(TransactionScopeAsyncFlowOption.Enabled))
        {
            await ExecAsync(a, "UPDATE t SET x = 1");
            await ExecAsync(a, "UPDATE t SET x = 2");
            await ExecAsync(a, "UPDATE t SET x = 3");
            scope.Complete();
        }

        Assert.That(serverA.Journal.Count(c => c.Operation == "Open"), Is.EqualTo(1), "one physical connection");
        Assert.That(serverA.Journal.Count(c => c.Operation == "Begin"), Is.EqualTo(1), "one branch");
    }

    [Test]
    public async Task Databases_of_one_SQL_Server_instance_share_one_connection_and_local_transaction()
    {
        var instance = FakeServer.Create("sql");
        var (orders, _) = Database(FakeDialect.Instance, "sql", "orders", instance);
        var (billing, _) = Database(FakeDialect.Instance, "sql", "billing", instance);
        using (var scope = new TransactionScope(TransactionScopeAsyncFlowOption.Enabled))
        {
            await ExecAsync(orders, "INSERT INTO orders VALUES (1)");
            await ExecAsync(billing, "INSERT INTO invoices VALUES (1)");
            await ExecAsync(orders, "UPDATE orders SET billed = 1");
            scope.Complete();
        }

        Assert.That(Texts(instance), Is.EqualTo(new[]
        {
            "sql: Begin",
            "sql: INSERT INTO orders VALUES (1)",
            "sql: ChangeDatabase",
            "sql: INSERT INTO invoices VALUES (1)",
            "sql: ChangeDatabase",
            "sql: UPDATE orders SET billed = 1",
            "sql: Commit",
        }), "atomic without two-phase commit: one local transaction, database switched per command");
    }

    [Test]
    public async Task A_SQL_Server_branch_is_the_last_resource_and_holds_the_decision()
    {
        var (pg, serverPg) = Database(FakeDialect.TwoPhase, "pg");
        var (sql, serverSql) = Database(FakeDialect.Instance, "sql");
        using (var scope = new TransactionScope(TransactionScopeAsyncFlowOption.Enabled))
        {
            await ExecAsync(sql, "UPDATE a SET x = 1");
            await ExecAsync(pg, "UPDATE b SET x = 1");
            scope.Complete();
        }

        var texts = Texts(serverPg, serverSql);
        Assert.That(texts.Where(t => t.Contains(" rws:", StringComparison.Ordinal) || t.Contains("rwsplit_decisions", StringComparison.Ordinal) || t.EndsWith("Commit", StringComparison.Ordinal)), Is.EqualTo(new[]
        {
            "pg: PREPARE rws:…:1",
            "sql: INSERT INTO rwsplit_decisions (gtrid, outcome, coordinator) VALUES (@gtrid, @outcome, @coordinator)",
            "sql: Commit",
            "pg: COMMIT PREPARED rws:…:1",
        }));
    }

    [Test]
    public void Two_SQL_Server_instances_writing_are_refused_and_rolled_back()
    {
        var (one, serverOne) = Database(FakeDialect.Instance, "sqlone");
        var (two, serverTwo) = Database(FakeDialect.Instance, "sqltwo");
        var ex = Assert.ThrowsAsync<TransactionAbortedException>(async () =>
        {
            using var scope = new TransactionScope(TransactionScopeAsyncFlowOption.Enabled);
            await ExecAsync(one, "UPDATE a SET x = 1");
            await ExecAsync(two, "UPDATE b SET x = 1");
            scope.Complete();
        });
        Assert.That(ex!.ToString(), Does.Contain("SQL Server instances").And.Contain("one instance per transaction"));
        Assert.That(serverOne.Journal.Count(c => c.Operation == "Rollback") + serverTwo.Journal.Count(c => c.Operation == "Rollback"), Is.EqualTo(2));
        Assert.That(serverOne.Journal.Concat(serverTwo.Journal).Count(c => c.Operation == "Commit"), Is.Zero);
    }

    [Test]
    public async Task Heuristic_mode_marker_then_prepare_then_decision_with_expectation_then_participant_then_commit_prepared()
    {
        var (pg, serverPg) = Database(FakeDialect.TwoPhase, "pg");
        var (sql, serverSql) = Database(FakeDialect.Instance, "sql");
        var (other, serverOther) = Database(FakeDialect.Instance, "other", allowHeuristic: true);
        using (var scope = new TransactionScope(TransactionScopeAsyncFlowOption.Enabled))
        {
            await ExecAsync(other, "UPDATE c SET x = 1"); // first, yet not the last resource: it opted in to committing after
            await ExecAsync(pg, "UPDATE b SET x = 1");
            await ExecAsync(sql, "UPDATE a SET x = 1");
            scope.Complete();
        }

        var protocol = Texts(serverPg, serverSql, serverOther)
            .Where(t => t.Contains(" rws:", StringComparison.Ordinal) || t.Contains("INSERT INTO rwsplit_decisions", StringComparison.Ordinal) || t.EndsWith("Commit", StringComparison.Ordinal));
        Assert.That(protocol, Is.EqualTo(new[]
        {
            "other: INSERT INTO rwsplit_decisions (gtrid, outcome, coordinator) VALUES (@gtrid, @outcome, @coordinator)", // marker
            "pg: PREPARE rws:…:1",
            "sql: INSERT INTO rwsplit_decisions (gtrid, outcome, coordinator) VALUES (@gtrid, @outcome, @coordinator)",   // decision
            "sql: INSERT INTO rwsplit_decisions (gtrid, outcome, coordinator) VALUES (@gtrid, @outcome, @coordinator)",   // expectation
            "sql: Commit",
            "other: Commit",
            "pg: COMMIT PREPARED rws:…:1",
        }));
    }

    [Test]
    public void Max_prepared_transactions_zero_fails_before_anything_is_prepared_or_committed()
    {
        var (a, serverA) = Database(FakeDialect.TwoPhase, "alpha");
        var (b, serverB) = Database(FakeDialect.TwoPhase, "beta");
        serverB.MaxPrepared = 0;
        var ex = Assert.ThrowsAsync<TransactionAbortedException>(async () =>
        {
            using var scope = new TransactionScope(TransactionScopeAsyncFlowOption.Enabled);
            await ExecAsync(a, "UPDATE a SET x = 1");
            await ExecAsync(b, "UPDATE b SET x = 1");
            scope.Complete();
        });
        Assert.That(ex!.ToString(), Does.Contain("max_prepared_transactions is 0").And.Contain("Nothing was committed"));
        var texts = Texts(serverA, serverB);
        Assert.That(texts, Has.None.Contains("PREPARE ").And.None.EndsWith(": Commit"));
        Assert.That(texts.Count(t => t.EndsWith(": Rollback", StringComparison.Ordinal)), Is.EqualTo(2));
    }

    [TestCase(FaultInjection.BeforePrepare)]
    [TestCase(FaultInjection.AfterPrepare)]
    [TestCase(FaultInjection.BeforeDecision)]
    [TestCase(FaultInjection.AfterDecisionInsert)]
    public void A_failure_before_the_decision_rolls_everything_back(string point)
    {
        var (a, serverA) = Database(FakeDialect.TwoPhase, "alpha");
        var (b, serverB) = Database(FakeDialect.TwoPhase, "beta");
        FaultInjection.Hook = (p, _) =>
        {
            if (p == point)
                throw new InvalidOperationException("injected at " + p);
        };
        Assert.ThrowsAsync<TransactionAbortedException>(async () =>
        {
            using var scope = new TransactionScope(TransactionScopeAsyncFlowOption.Enabled);
            await ExecAsync(a, "UPDATE a SET x = 1");
            await ExecAsync(b, "UPDATE b SET x = 1");
            scope.Complete();
        });
        var texts = Texts(serverA, serverB);
        Assert.That(texts, Has.None.EndsWith(": Commit").And.None.Contains("COMMIT PREPARED"));
        var prepared = texts.Any(t => t.StartsWith("beta: PREPARE", StringComparison.Ordinal));
        Assert.That(texts.Any(t => t.StartsWith("beta: ROLLBACK PREPARED", StringComparison.Ordinal)), Is.EqualTo(prepared), "a prepared branch is rolled back");
        Assert.That(texts, Does.Contain("alpha: Rollback"));
    }

    [Test]
    public void A_decision_that_loses_to_a_recovery_fence_aborts()
    {
        var (a, serverA) = Database(FakeDialect.TwoPhase, "alpha");
        var (b, _) = Database(FakeDialect.TwoPhase, "beta");
        serverA.UniqueViolations.Add(FakeDialect.TwoPhase.TransactionStatements.InsertDecisionSql);
        var ex = Assert.ThrowsAsync<TransactionAbortedException>(async () =>
        {
            using var scope = new TransactionScope(TransactionScopeAsyncFlowOption.Enabled);
            await ExecAsync(a, "UPDATE a SET x = 1");
            await ExecAsync(b, "UPDATE b SET x = 1");
            scope.Complete();
        });
        Assert.That(ex!.ToString(), Does.Contain("fenced"));
    }

    [Test]
    public void An_unknown_outcome_of_the_decision_commit_is_in_doubt_and_leaves_prepared_branches_to_recovery()
    {
        var (a, _) = Database(FakeDialect.TwoPhase, "alpha");
        var (b, serverB) = Database(FakeDialect.TwoPhase, "beta");
        FaultInjection.Hook = (p, _) =>
        {
            if (p == FaultInjection.DecisionCommitReplyLost)
                throw new System.IO.IOException("connection reset while reading the reply to COMMIT");
        };
        Assert.ThrowsAsync<TransactionInDoubtException>(async () =>
        {
            using var scope = new TransactionScope(TransactionScopeAsyncFlowOption.Enabled);
            await ExecAsync(a, "UPDATE a SET x = 1");
            await ExecAsync(b, "UPDATE b SET x = 1");
            scope.Complete();
        });
        Assert.That(Texts(serverB), Has.None.Contains("ROLLBACK PREPARED").And.None.Contains("COMMIT PREPARED"), "only recovery may decide now");
    }

    [Test]
    public async Task Rollback_without_Complete_rolls_back_every_branch()
    {
        var (a, serverA) = Database(FakeDialect.TwoPhase, "alpha");
        var (b, serverB) = Database(FakeDialect.TwoPhase, "beta");
        using (new TransactionScope(TransactionScopeAsyncFlowOption.Enabled))
        {
            await ExecAsync(a, "UPDATE a SET x = 1");
            await ExecAsync(b, "UPDATE b SET x = 1");
        }

        Assert.That(Texts(serverA, serverB).Count(t => t.EndsWith(": Rollback", StringComparison.Ordinal)), Is.EqualTo(2));
        Assert.That(Texts(serverA, serverB), Has.None.EndsWith(": Commit"));
    }

    [Test]
    public void A_data_source_with_distributed_transactions_off_is_refused_with_the_fix()
    {
        var (a, _) = Database(FakeDialect.TwoPhase, "alpha", enabled: false);
        using var scope = new TransactionScope(TransactionScopeAsyncFlowOption.Enabled);
        var ex = Assert.ThrowsAsync<RwSplitException>(() => ExecAsync(a, "UPDATE a SET x = 1"));
        Assert.That(ex!.Error, Is.EqualTo(RwSplitError.DistributedTransactionUnavailable));
        Assert.That(ex.Message, Does.Contain("DistributedTransactions = true"));
    }

    [Test]
    public async Task Suppress_and_RequiresNew_scopes_behave_as_System_Transactions_users_expect()
    {
        var (a, serverA) = Database(FakeDialect.TwoPhase, "alpha");
        using (var outer = new TransactionScope(TransactionScopeAsyncFlowOption.Enabled))
        {
            await ExecAsync(a, "UPDATE outer_tx SET x = 1");
            using (new TransactionScope(TransactionScopeOption.Suppress, TransactionScopeAsyncFlowOption.Enabled))
                await ExecAsync(a, "UPDATE suppressed SET x = 1"); // autocommit, outside the transaction
            using (var inner = new TransactionScope(TransactionScopeOption.RequiresNew, TransactionScopeAsyncFlowOption.Enabled))
            {
                await ExecAsync(a, "UPDATE inner_tx SET x = 1");
                inner.Complete();
            }

            // not completed: the outer transaction rolls back
        }

        Assert.That(serverA.Journal.Count(c => c.Operation == "Begin"), Is.EqualTo(2), "outer and RequiresNew each have a branch; Suppress has none");
        Assert.That(serverA.Journal.Count(c => c.Operation == "Commit"), Is.EqualTo(1), "the inner committed on its own");
        Assert.That(serverA.Journal.Count(c => c.Operation == "Rollback"), Is.EqualTo(1), "the outer rolled back");
    }

    [Test]
    public async Task The_explicit_async_API_needs_no_TransactionScope()
    {
        var (a, serverA) = Database(FakeDialect.TwoPhase, "alpha");
        var (b, serverB) = Database(FakeDialect.TwoPhase, "beta");
        await using (var transaction = RwSplitDistributedTransaction.Begin())
        {
            await ExecAsync(a, "UPDATE a SET x = 1", transaction);
            await ExecAsync(b, "UPDATE b SET x = 1", transaction);
            await transaction.CommitAsync();
            Assert.That(transaction.IsCompleted, Is.True);
        }

        var texts = Texts(serverA, serverB);
        Assert.That(texts.Count(t => t.Contains("PREPARE rws:", StringComparison.Ordinal)), Is.EqualTo(1));
        Assert.That(texts.Count(t => t.Contains("COMMIT PREPARED rws:", StringComparison.Ordinal)), Is.EqualTo(1));
        Assert.That(serverA.Journal.Concat(serverB.Journal).Where(c => c.Operation == "NonQuery").All(c => c.Async), Is.True, "everything ran asynchronously");
    }

    [Test]
    public async Task A_statement_after_the_commit_started_is_refused()
    {
        var (a, _) = Database(FakeDialect.TwoPhase, "alpha");
        var transaction = RwSplitDistributedTransaction.Begin();
        await using var connection = await a.OpenConnectionAsync();
        connection.EnlistDistributedTransaction(transaction);
        await using var command = connection.CreateCommand();
        command.CommandText = "UPDATE a SET x = 1";
        await command.ExecuteNonQueryAsync();
        await transaction.CommitAsync();
        Assert.ThrowsAsync<InvalidOperationException>(() => transaction.CommitAsync());
        connection.EnlistDistributedTransaction(null);
        Assert.That(await command.ExecuteNonQueryAsync(), Is.EqualTo(1), "after leaving it, the connection works on its own");
    }
}

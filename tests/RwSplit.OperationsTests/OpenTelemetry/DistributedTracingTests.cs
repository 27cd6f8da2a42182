using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading.Tasks;
using System.Transactions;
using Npgsql;
using NUnit.Framework;
using RwSplit.TransferWorkload;

namespace RwSplit.OperationsTests.OpenTelemetry;

/// <summary>
/// The spans of RwSplit's distributed commit across two databases of the primary (<c>otel_bank_1</c>,
/// <c>otel_bank_2</c>) under <see cref="TransactionScope"/>, and of recovery's actions on what a killed coordinator
/// left prepared: one span per phase and branch, tagged with the database and server, never with a transaction id.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class DistributedTracingTests
{
    private readonly Bank _bank = new(OtelCluster.Bank1, OtelCluster.Bank2);
    private readonly List<RwSplitDataSource> _dataSources = [];
    private TraceCapture _traces = null!;

    private static string[] BankDatabases => ["otel_bank_1", "otel_bank_2"];

    [SetUp]
    public async Task ResetAsync()
    {
        await _bank.ResetAsync();
        _traces = new TraceCapture();
    }

    [TearDown]
    public async Task CheckAsync()
    {
        _traces.Dispose();
        foreach (var dataSource in _dataSources)
            await dataSource.DisposeAsync();
        _dataSources.Clear();
        Assert.That(await _bank.TotalAsync(), Is.EqualTo(Bank.ExpectedTotal), "no money lost or created");
        Assert.That(await _bank.PreparedAsync(), Is.Empty, "no prepared transaction left behind");
    }

    private (RwSplitDataSource First, RwSplitDataSource Second) DataSources(string application, TimeSpan? grace = null)
    {
        var (first, second) = _bank.CreateDataSources(application, grace);
        _dataSources.Add(first);
        _dataSources.Add(second);
        return (first, second);
    }

    [Test]
    public async Task A_two_phase_commit_has_a_span_per_phase_and_branch_under_the_commit_span()
    {
        var (first, second) = DataSources("otel-2pc");
        Activity root;
        using (root = TraceCapture.TestSource.StartActivity("transfer")!)
            await Bank.TransferAsync(first, second, 1, 2, 10);

        Assert.That(await Bank.BalanceAsync(_bank.Database2, 2), Is.EqualTo(Bank.InitialBalance + 10));
        var spans = _traces.Trace(root);
        var commit = TraceCapture.Named(spans, "rwsplit.transaction.commit").Single();
        Assert.That(commit.ParentSpanId, Is.EqualTo(root.SpanId), "the commit is inside the application's span that completed the scope");
        Assert.That(commit.GetTagItem("rwsplit.transaction.kind"), Is.EqualTo("two_phase"));
        Assert.That(commit.GetTagItem("rwsplit.transaction.outcome"), Is.EqualTo("committed"));
        Assert.That(commit.GetTagItem("rwsplit.transaction.branch.count"), Is.EqualTo(2));
        Assert.That(commit.Status, Is.EqualTo(ActivityStatusCode.Unset));

        var phases = TraceCapture.ChildrenOf(spans, commit).Where(s => s.Source.Name == "RwSplit").ToList();
        var prepare = phases.Single(s => s.OperationName == "rwsplit.transaction.prepare");
        var decision = phases.Single(s => s.OperationName == "rwsplit.transaction.decision");
        var commitPrepared = phases.Single(s => s.OperationName == "rwsplit.transaction.commit_prepared");
        Assert.Multiple(() =>
        {
            Assert.That(new[] { prepare, decision }.Select(s => s.GetTagItem("db.namespace")), Is.EquivalentTo(BankDatabases), "one branch prepares, the other holds the decision");
            Assert.That(commitPrepared.GetTagItem("db.namespace"), Is.EqualTo(prepare.GetTagItem("db.namespace")), "the prepared branch is committed after the decision");
            Assert.That(commitPrepared.GetTagItem("rwsplit.transaction.branch.index"), Is.EqualTo(prepare.GetTagItem("rwsplit.transaction.branch.index")));
            Assert.That(prepare.StartTimeUtc + prepare.Duration, Is.LessThanOrEqualTo(decision.StartTimeUtc), "prepare, then the decision");
            Assert.That(decision.StartTimeUtc + decision.Duration, Is.LessThanOrEqualTo(commitPrepared.StartTimeUtc), "the decision, then COMMIT PREPARED");
            foreach (var phase in phases)
            {
                Assert.That(phase.GetTagItem("db.system.name"), Is.EqualTo("postgresql"));
                Assert.That(phase.GetTagItem("server.port"), Is.EqualTo(OtelCluster.Cluster.Primary.Port));
                Assert.That(phase.GetTagItem("server.address"), Is.EqualTo(new NpgsqlConnectionStringBuilder(OtelCluster.Bank1).Host));
                Assert.That(phase.GetTagItem("rwsplit.data_source"), Is.AnyOf("bank-1", "bank-2"));
                Assert.That(phase.Status, Is.EqualTo(ActivityStatusCode.Unset));
            }
        });
        Assert.That(TraceCapture.ChildrenOf(spans, prepare).Where(s => s.Source.Name == "Npgsql" && s.Kind == ActivityKind.Client), Has.Exactly(1).Items, "PREPARE TRANSACTION is Npgsql's span inside the phase's");
        Assert.That(TraceCapture.ChildrenOf(spans, commitPrepared).Where(s => s.Source.Name == "Npgsql" && s.Kind == ActivityKind.Client), Has.Exactly(1).Items);
        var decisionCommands = TraceCapture.ChildrenOf(spans, decision).Where(s => s.Source.Name == "Npgsql" && s.Kind == ActivityKind.Client).ToList();
        Assert.That(decisionCommands, Has.Exactly(1).Items, "the decision row and its COMMIT are one command, one round trip");
        Assert.That(decisionCommands[0].GetTagItem("db.query.text") as string, Does.StartWith("INSERT INTO rwsplit_decisions").And.EndWith("; COMMIT"));
        Assert.That(TraceCapture.RwSplitTagValues(spans), Has.None.Contains("rws:").And.None.Contains(OtelCluster.Password), "no prepared-transaction id, no secret");

        // The two updates are command spans under the application's span too, on the primary.
        var commands = TraceCapture.ChildrenOf(spans, root).Where(s => s.OperationName == "rwsplit.route").ToList();
        Assert.That(commands.Select(c => c.GetTagItem("rwsplit.route.reason")), Is.EqualTo(new[] { "ambient_transaction", "ambient_transaction" }));
    }

    [Test]
    public async Task A_scope_that_does_not_complete_is_a_rollback_span()
    {
        var (first, second) = DataSources("otel-rollback");
        Activity root;
        using (root = TraceCapture.TestSource.StartActivity("abandoned transfer")!)
        {
            using var scope = new TransactionScope(TransactionScopeAsyncFlowOption.Enabled);
            foreach (var dataSource in new[] { first, second })
            {
                await using var connection = await dataSource.OpenConnectionAsync();
                await using var command = connection.CreateCommand();
                command.CommandText = "UPDATE bank_accounts SET balance = balance + 5 WHERE id = 3";
                await command.ExecuteNonQueryAsync();
            }
        }

        var spans = _traces.Trace(root);
        var rollback = TraceCapture.Named(spans, "rwsplit.transaction.rollback").Single();
        Assert.That(rollback.ParentSpanId, Is.EqualTo(root.SpanId));
        Assert.That(rollback.GetTagItem("rwsplit.transaction.outcome"), Is.EqualTo("aborted"));
        Assert.That(rollback.GetTagItem("rwsplit.transaction.branch.count"), Is.EqualTo(2));
        Assert.That(rollback.Status, Is.EqualTo(ActivityStatusCode.Unset), "a rollback the application chose is no error");
        Assert.That(spans.Where(s => s.OperationName == "rwsplit.transaction.commit"), Is.Empty);
        Assert.That(await Bank.BalanceAsync(_bank.Database1, 3), Is.EqualTo(Bank.InitialBalance));
    }

    /// <summary>A coordinator killed right after its decision committed leaves a branch prepared; recovery commits it, in a span.</summary>
    [Test]
    public async Task Recovery_commits_what_a_killed_coordinator_decided_in_a_recovery_commit_span()
    {
        var gids = await KillCoordinatorAtAsync("after-decision-commit");
        var (first, _) = DataSources("otel-recover-commit");
        var result = await first.Recovery!.RecoverAsync();

        var actions = _traces.Spans.Where(s => s.OperationName == "rwsplit.recovery.commit").ToList();
        Assert.That(actions, Has.Count.EqualTo(gids.Count), $"one span per branch committed (this pass: {result.Committed})");
        AssertRecoveryAction(actions, "commit", gids);
    }

    /// <summary>A coordinator killed after a prepare, before any decision: past the grace period recovery fences it off and rolls it back.</summary>
    [Test]
    public async Task Recovery_fences_off_an_undecided_branch_in_a_recovery_fence_span()
    {
        var gids = await KillCoordinatorAtAsync("after-prepare");
        var (first, _) = DataSources("otel-recover-fence", grace: TimeSpan.FromSeconds(1));
        await Task.Delay(TimeSpan.FromSeconds(1.5)); // past RecoveryGracePeriod
        await first.Recovery!.RecoverAsync();

        var actions = _traces.Spans.Where(s => s.OperationName == "rwsplit.recovery.fence").ToList();
        Assert.That(actions, Has.Count.EqualTo(gids.Count));
        AssertRecoveryAction(actions, "fence", gids);
    }

    /// <summary>An operator's heuristic decision (<c>ForceResolveAsync</c>) is a span of its own.</summary>
    [Test]
    public async Task A_forced_resolution_is_a_span([Values] bool commit)
    {
        var gid = $"rws:operator:{Guid.NewGuid():N}:0000000000000000:0";
        await using (var connection = new NpgsqlConnection(_bank.Database2))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand($"BEGIN; UPDATE bank_accounts SET balance = balance WHERE id = 1; PREPARE TRANSACTION '{gid}'", connection);
            await command.ExecuteNonQueryAsync();
        }

        var (first, _) = DataSources("otel-force");
        await first.Recovery!.ForceResolveAsync(gid, commit);

        var action = commit ? "forced_commit" : "forced_rollback";
        var spans = _traces.Spans.Where(s => s.OperationName == "rwsplit.recovery." + action).ToList();
        Assert.That(spans, Has.Count.EqualTo(1));
        AssertRecoveryAction(spans, action, [gid]);
        Assert.That(spans[0].GetTagItem("db.namespace"), Is.EqualTo("otel_bank_2"));
    }

    /// <summary>Runs the transfer workload as a child process that kills itself at <paramref name="fault"/>; returns the ids it left prepared.</summary>
    private async Task<List<string>> KillCoordinatorAtAsync(string fault)
    {
        using var child = ChildProcess.Start("rwsplit", _bank.Database1, _bank.Database2, fault, seconds: 60);
        Assert.That(await child.WaitForExitAsync(TimeSpan.FromSeconds(60)), Is.True, () => $"the workload did not die at {fault}: {child.StandardError}");
        var prepared = (await _bank.PreparedAsync()).Select(p => p[(p.IndexOf(": ", StringComparison.Ordinal) + 2)..]).ToList();
        Assert.That(prepared, Is.Not.Empty, $"the coordinator died at {fault} with a branch prepared");
        return prepared;
    }

    private void AssertRecoveryAction(IReadOnlyList<Activity> actions, string action, IReadOnlyList<string> gids)
    {
        foreach (var span in actions)
        {
            Assert.That(span.GetTagItem("rwsplit.recovery.action"), Is.EqualTo(action));
            Assert.That(span.GetTagItem("db.system.name"), Is.EqualTo("postgresql"));
            Assert.That(span.GetTagItem("db.namespace"), Is.AnyOf(BankDatabases));
            Assert.That(span.GetTagItem("server.port"), Is.EqualTo(OtelCluster.Cluster.Primary.Port));
            Assert.That(span.GetTagItem("rwsplit.data_source"), Is.AnyOf("bank-1", "bank-2"));
            Assert.That(span.Status, Is.EqualTo(ActivityStatusCode.Unset));
            Assert.That(TraceCapture.ChildrenOf(_traces.Spans, span).Where(s => s.Source.Name == "Npgsql" && s.Kind == ActivityKind.Client), Has.Exactly(1).Items, "the COMMIT/ROLLBACK PREPARED is Npgsql's span inside it");
        }

        var values = TraceCapture.RwSplitTagValues(_traces.Spans).ToList();
        foreach (var gid in gids)
            Assert.That(values, Has.None.Contains(gid.Split(':')[2]), "no transaction id in RwSplit's spans");
        Assert.That(values, Has.None.Contains(OtelCluster.Password));
    }
}

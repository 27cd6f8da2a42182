using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json;
using System.Threading.Tasks;
using Npgsql;
using NUnit.Framework;
using RwSplit.PgCluster;
using RwSplit.Transactions;
using RwSplit.TransferWorkload;

namespace RwSplit.OperationsTests.Tool;

/// <summary>
/// <c>rwsplit tx</c> on prepared transactions left by a transfer workload killed (SIGKILL) at a fault point of the commit
/// protocol, across two databases of one server (port 25489): listed with their decisions, a dry run that changes
/// nothing, recovery, and resolution by hand. Also <see cref="RwSplitRecovery.InspectAsync"/> itself.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class TransactionCommandTests
{
    private LocalPgCluster _cluster = null!;
    private Bank _bank = null!;
    private Dictionary<string, string> _environment = null!;

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _cluster = await ToolCluster.StartAsync(25489, replicas: 0);
        await using (var connection = new NpgsqlConnection(_cluster.PrimaryConnectionString))
        {
            await connection.OpenAsync();
            await using var exists = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = 'rwsplit_tool_b'", connection);
            if (await exists.ExecuteScalarAsync() is null)
            {
                await using var create = new NpgsqlCommand("CREATE DATABASE rwsplit_tool_b", connection);
                await create.ExecuteNonQueryAsync();
            }
        }

        var second = new NpgsqlConnectionStringBuilder(_cluster.PrimaryConnectionString) { Database = "rwsplit_tool_b" }.ConnectionString;
        _bank = new Bank(_cluster.PrimaryConnectionString, second);
        _environment = new Dictionary<string, string>
        {
            ["RWSPLIT_PRIMARY"] = ToolCluster.WithPassword(_bank.Database1),
            ["RWSPLIT_PARTICIPANTS"] = ToolCluster.WithPassword(_bank.Database2),
        };
    }

    [SetUp]
    public Task ResetAsync() => _bank.ResetAsync();

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        if (_cluster is not null)
            await _cluster.DisposeAsync();
    }

    private Task<ToolResult> RunAsync(params string[] args) => ToolProcess.RunAsync(_environment, args);

    /// <summary>Runs the workload in a child process until it kills itself at <paramref name="point"/> (a name of the core's fault points); returns the prepared branch it left.</summary>
    private async Task<string> KillWorkerAtAsync(string point)
    {
        using var child = ChildProcess.Start("rwsplit", _bank.Database1, _bank.Database2, fault: point, forwardOnly: true);
        Assert.That(await child.WaitForExitAsync(TimeSpan.FromSeconds(60)), Is.True, $"the worker never reached {point}: {child.StandardError}");
        var prepared = await _bank.PreparedAsync();
        Assert.That(prepared, Has.Count.EqualTo(1), $"killed at {point}, the worker leaves one prepared branch (in the database it prepared)");
        return prepared[0][(prepared[0].IndexOf(": ", StringComparison.Ordinal) + 2)..];
    }

    [Test]
    public async Task List_and_dry_run_show_a_branch_without_decision_and_change_nothing()
    {
        var branch = await KillWorkerAtAsync("after-prepare");

        var list = await RunAsync("tx", "list", "-o", "json");
        ToolCluster.AssertNoPassword(list);
        Assert.That(list.ExitCode, Is.EqualTo(0), list.ToString);
        var listed = list.Json.GetProperty("branches").EnumerateArray().Single();
        Assert.Multiple(() =>
        {
            Assert.That(listed.GetProperty("branchId").GetString(), Is.EqualTo(branch));
            Assert.That(listed.GetProperty("database").GetString(), Does.EndWith("/rwsplit_tool_b"));
            Assert.That(listed.GetProperty("decisionDatabase").GetString(), Does.EndWith("/rwsplit"));
            Assert.That(listed.GetProperty("decision").ValueKind, Is.EqualTo(JsonValueKind.Null));
            Assert.That(listed.GetProperty("action").GetString(), Is.EqualTo("wait"), "within the default grace period of a minute");
            Assert.That(listed.GetProperty("ageSeconds").GetDouble(), Is.GreaterThanOrEqualTo(0));
        });

        // Past a (short) grace period a pass would fence it; the dry run only says so.
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        var dryRun = await RunAsync("tx", "recover", "--dry-run", "--grace-period", "1", "-o", "json");
        var dryRunTable = await RunAsync("tx", "recover", "--dry-run", "--grace-period", "1");
        ToolCluster.AssertNoPassword(dryRun);
        ToolCluster.AssertNoPassword(dryRunTable);
        Assert.That(dryRun.ExitCode, Is.EqualTo(0), dryRun.ToString);
        Assert.Multiple(() =>
        {
            Assert.That(dryRun.Json.GetProperty("dryRun").GetBoolean(), Is.True);
            Assert.That(dryRun.Json.GetProperty("wouldFence").GetInt32(), Is.EqualTo(1));
            Assert.That(dryRun.Json.GetProperty("wouldCommit").GetInt32(), Is.Zero);
            Assert.That(dryRun.Json.GetProperty("branches")[0].GetProperty("action").GetString(), Is.EqualTo("fence"));
            Assert.That(dryRunTable.StandardOutput, Does.Contain(branch).And.Contain("Dry run, nothing changed"));
        });
        Assert.That(await _bank.PreparedAsync(), Has.Count.EqualTo(1).And.Some.EndWith(branch), "the dry run left the branch prepared");
        Assert.That(await DecisionCountAsync(branch.Split(':')[2]), Is.Zero, "and wrote no fence for its transaction");

        // Resolved by hand: rolled back, the money where it was.
        var resolve = await RunAsync("tx", "resolve", branch, "--rollback", "-o", "json");
        ToolCluster.AssertNoPassword(resolve);
        Assert.That(resolve.ExitCode, Is.EqualTo(0), resolve.ToString);
        Assert.That(resolve.Json.GetProperty("resolution").GetString(), Is.EqualTo("rollback"));
        Assert.That(await _bank.PreparedAsync(), Is.Empty);
        Assert.That(await _bank.TotalAsync(), Is.EqualTo(Bank.ExpectedTotal));

        var again = await RunAsync("tx", "resolve", branch, "--commit");
        Assert.That(again.ExitCode, Is.EqualTo(3), again.ToString);
        Assert.That(again.StandardError, Does.Contain("No data source of this recovery has a prepared transaction"));
    }

    [Test]
    public async Task A_branch_whose_decision_committed_is_listed_as_commit_and_recovered()
    {
        var branch = await KillWorkerAtAsync("after-decision-commit");

        var list = await RunAsync("tx", "list");
        ToolCluster.AssertNoPassword(list);
        Assert.That(list.ExitCode, Is.EqualTo(0), list.ToString);
        Assert.That(list.StandardOutput, Does.Contain(branch).And.Contain("commit"));
        Assert.That(await _bank.TotalAsync(), Is.Not.EqualTo(Bank.ExpectedTotal), "the withdrawal committed, the deposit is still prepared");

        var recover = await RunAsync("tx", "recover", "-o", "json");
        ToolCluster.AssertNoPassword(recover);
        Assert.That(recover.ExitCode, Is.EqualTo(0), recover.ToString);
        Assert.Multiple(() =>
        {
            Assert.That(recover.Json.GetProperty("committed").GetInt32(), Is.EqualTo(1));
            Assert.That(recover.Json.GetProperty("unresolved").GetArrayLength(), Is.Zero);
        });
        Assert.That(await _bank.PreparedAsync(), Is.Empty);
        Assert.That(await _bank.TotalAsync(), Is.EqualTo(Bank.ExpectedTotal));

        var heuristics = await RunAsync("tx", "heuristics", "-o", "json");
        Assert.That(heuristics.ExitCode, Is.EqualTo(0), heuristics.ToString);
        Assert.That(heuristics.Json.GetArrayLength(), Is.Zero, "PostgreSQL prepares every branch: no heuristic outcome");
    }

    [Test]
    public async Task InspectAsync_plans_what_RecoverAsync_then_does_and_acts_on_nothing()
    {
        var branch = await KillWorkerAtAsync("after-decision-commit");
        var (first, second) = _bank.CreateDataSources("rwsplit-tool-inspect");
        try
        {
            var recovery = first.Recovery!;
            var inspection = await recovery.InspectAsync();
            var planned = inspection.Branches.Single();
            Assert.Multiple(() =>
            {
                Assert.That(planned.BranchId, Is.EqualTo(branch));
                Assert.That(planned.Decision, Is.EqualTo("commit"));
                Assert.That(planned.Action, Is.EqualTo(PlannedRecoveryAction.Commit));
                Assert.That(planned.Database, Does.EndWith("/rwsplit_tool_b"));
                Assert.That(inspection.Unreachable, Is.Empty);
            });
            Assert.That(await _bank.PreparedAsync(), Has.Count.EqualTo(1), "inspecting committed nothing");

            var result = await recovery.RecoverAsync();
            Assert.That(result.Committed, Is.EqualTo(1), "the pass did what the inspection said");
            Assert.That((await recovery.InspectAsync()).Branches, Is.Empty);
        }
        finally
        {
            first.Dispose();
            second.Dispose();
        }
    }

    /// <summary>Decision or fence rows of one distributed transaction in its decision database.</summary>
    private async Task<long> DecisionCountAsync(string gtrid)
    {
        await using var connection = new NpgsqlConnection(_bank.Database1);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT count(*) FROM rwsplit_decisions WHERE gtrid = @gtrid", connection);
        command.Parameters.AddWithValue("gtrid", gtrid);
        try
        {
            return (long)(await command.ExecuteScalarAsync())!;
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            return 0;
        }
    }
}

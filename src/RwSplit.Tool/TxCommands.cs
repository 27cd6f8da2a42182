using System;
using System.Collections.Generic;
using System.CommandLine;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using RwSplit.Transactions;

namespace RwSplit.Tool;

/// <summary>
/// <c>rwsplit tx list|recover|resolve|heuristics</c>: RwSplit's prepared branches in the databases given (the primary
/// and each <c>--participant</c>), inspected, recovered or resolved by hand.
/// </summary>
internal static class TxCommands
{
    internal sealed record BranchDocument(string BranchId, string Database, double AgeSeconds, string? Gtrid, string? DecisionDatabase, string? Decision, PlannedRecoveryAction Action, string Reason);

    internal sealed record HeuristicDocument(string Id, string Gtrid, string DecisionDatabase, string Participant, double AgeSeconds);

    internal sealed record ListDocument(IReadOnlyList<BranchDocument> Branches, IReadOnlyList<HeuristicDocument> HeuristicOutcomes, IReadOnlyList<string> Unreachable);

    internal sealed record DryRunDocument(bool DryRun, int WouldCommit, int WouldRollBack, int WouldFence, int WouldLeave, IReadOnlyList<BranchDocument> Branches, IReadOnlyList<HeuristicDocument> HeuristicOutcomes, IReadOnlyList<string> Unreachable);

    internal sealed record UnresolvedDocument(string BranchId, string Database, double AgeSeconds, string Reason);

    internal sealed record RecoverDocument(bool DryRun, int Committed, int RolledBack, int Fenced, int HeuristicConfirmed, IReadOnlyList<UnresolvedDocument> Unresolved, IReadOnlyList<HeuristicDocument> HeuristicOutcomes);

    internal sealed record ResolveDocument(string BranchId, string Resolution);

    internal sealed record AcknowledgeDocument(string Acknowledged);

    public static Command Create(Tool tool)
    {
        var grace = new Option<double?>("--grace-period")
        {
            Description = "Seconds a branch without a decision may wait before recovery aborts it (default: the settings file's, else RwSplit's 60). Only shorten it when no coordinator can still be committing.",
            Recursive = true,
        };
        var tx = new Command("tx", "RwSplit's distributed transactions: prepared branches, recovery, manual resolution, heuristic outcomes.");
        tx.Options.Add(grace);

        var list = new Command("list", "RwSplit's prepared branches with their decisions, ages and what recovery would do (nothing is changed).");
        list.SetAction(tool.Guard((parse, output, ct) => WithRecoveryAsync(tool, parse, output, grace, ct, (recovery, _) => ListAsync(recovery, output, dryRun: false, ct))));

        var dryRun = new Option<bool>("--dry-run") { Description = "Only say what a pass would do; change nothing." };
        var recover = new Command("recover", "Runs one recovery pass now: commits, rolls back or fences each prepared branch by its decision. Exit code 1 when some are left unresolved.");
        recover.Options.Add(dryRun);
        recover.SetAction(tool.Guard((parse, output, ct) => WithRecoveryAsync(tool, parse, output, grace, ct, (recovery, _) => parse.GetValue(dryRun) ? ListAsync(recovery, output, dryRun: true, ct) : RecoverAsync(recovery, output, ct))));

        var branch = new Argument<string>("branch") { Description = "The prepared transaction's id (rws:...), as tx list shows it." };
        var commit = new Option<bool>("--commit") { Description = "Commit it." };
        var rollback = new Option<bool>("--rollback") { Description = "Roll it back." };
        var resolve = new Command("resolve", "Commits or rolls back one prepared branch by hand, without consulting its decision (a heuristic decision, logged): only when its decision database is lost for good.");
        resolve.Arguments.Add(branch);
        resolve.Options.Add(commit);
        resolve.Options.Add(rollback);
        resolve.SetAction(tool.Guard((parse, output, ct) =>
        {
            if (parse.GetValue(commit) == parse.GetValue(rollback))
                throw new UsageException("Say what to do with the branch: exactly one of --commit and --rollback.");
            return WithRecoveryAsync(tool, parse, output, grace, ct, (recovery, _) => ResolveAsync(recovery, output, parse.GetRequiredValue(branch), parse.GetValue(commit), ct));
        }));

        var ack = new Option<string?>("--ack") { Description = "Acknowledge this heuristic outcome (its id) after reconciling the data by hand." };
        var heuristics = new Command("heuristics", "Heuristic outcomes (SQL Server heuristic participants whose work is missing), or acknowledges one with --ack.");
        heuristics.Options.Add(ack);
        heuristics.SetAction(tool.Guard((parse, output, ct) => WithRecoveryAsync(tool, parse, output, grace, ct, (recovery, _) => parse.GetValue(ack) is { } id ? AcknowledgeAsync(recovery, output, id, ct) : HeuristicsAsync(recovery, output, ct))));

        tx.Subcommands.Add(list);
        tx.Subcommands.Add(recover);
        tx.Subcommands.Add(resolve);
        tx.Subcommands.Add(heuristics);
        return tx;
    }

    private static async Task<int> WithRecoveryAsync(Tool tool, ParseResult parse, Output output, Option<double?> grace, CancellationToken cancellationToken, Func<RwSplitRecovery, CancellationToken, Task<int>> body)
    {
        var (recovery, dataSources) = tool.Settings(parse).CreateRecovery(parse.GetValue(grace) is { } seconds ? TimeSpan.FromSeconds(seconds) : null);
        try
        {
            return await output.ProgressAsync("Reading the prepared transactions...", () => body(recovery, cancellationToken));
        }
        finally
        {
            foreach (var dataSource in dataSources)
                await dataSource.DisposeAsync();
        }
    }

    private static async Task<int> ListAsync(RwSplitRecovery recovery, Output output, bool dryRun, CancellationToken cancellationToken)
    {
        var inspection = await recovery.InspectAsync(cancellationToken);
        var branches = inspection.Branches.Select(b => new BranchDocument(b.BranchId, b.Database, Output.Round(b.Age.TotalSeconds, 1), b.Gtrid, b.DecisionDatabase, b.Decision, b.Action, b.Reason)).ToList();
        var heuristic = inspection.HeuristicOutcomes.Select(Heuristic).ToList();
        int Count(PlannedRecoveryAction action) => branches.Count(b => b.Action == action);
        if (output.IsJson)
        {
            if (dryRun)
                output.WriteJson(new DryRunDocument(true, Count(PlannedRecoveryAction.Commit), Count(PlannedRecoveryAction.Rollback), Count(PlannedRecoveryAction.Fence), Count(PlannedRecoveryAction.Wait) + Count(PlannedRecoveryAction.Unresolvable), branches, heuristic, inspection.Unreachable));
            else
                output.WriteJson(new ListDocument(branches, heuristic, inspection.Unreachable));
            return inspection.Unreachable.Count == 0 ? ExitCodes.Healthy : ExitCodes.UsageOrConnectionError;
        }

        if (branches.Count == 0)
        {
            output.Line("No RwSplit prepared transaction.");
        }
        else
        {
            var table = Output.Table("Branch", "Database", "Age", "Decision", dryRun ? "Would" : "Recovery would", "Why");
            foreach (var b in branches)
                Output.Row(table, b.BranchId, b.Database, Output.Age(TimeSpan.FromSeconds(b.AgeSeconds)), b.Decision ?? "none", b.Action.ToString().ToLowerInvariant(), b.Reason);
            output.Write(table);
        }

        if (dryRun)
            output.Line($"Dry run, nothing changed: would commit {Count(PlannedRecoveryAction.Commit)}, roll back {Count(PlannedRecoveryAction.Rollback)}, fence and roll back {Count(PlannedRecoveryAction.Fence)}, leave {Count(PlannedRecoveryAction.Wait) + Count(PlannedRecoveryAction.Unresolvable)}.");
        WriteHeuristic(output, heuristic);
        foreach (var unreachable in inspection.Unreachable)
            Output.Error("could not read " + unreachable);
        return inspection.Unreachable.Count == 0 ? ExitCodes.Healthy : ExitCodes.UsageOrConnectionError;
    }

    private static async Task<int> RecoverAsync(RwSplitRecovery recovery, Output output, CancellationToken cancellationToken)
    {
        var result = await recovery.RecoverAsync(cancellationToken);
        var unresolved = result.Unresolved.Select(u => new UnresolvedDocument(u.BranchId, u.Database, Output.Round(u.Age.TotalSeconds, 1), u.Reason)).ToList();
        var heuristic = result.HeuristicOutcomes.Select(Heuristic).ToList();
        var exitCode = unresolved.Count == 0 ? ExitCodes.Healthy : ExitCodes.Degraded;
        if (output.IsJson)
        {
            output.WriteJson(new RecoverDocument(false, result.Committed, result.RolledBack, result.Fenced, result.HeuristicConfirmed, unresolved, heuristic));
            return exitCode;
        }

        output.Line($"Committed {result.Committed}, rolled back {result.RolledBack} (of which fenced {result.Fenced}), heuristic participants confirmed {result.HeuristicConfirmed}, left {unresolved.Count}.");
        if (unresolved.Count > 0)
        {
            var table = Output.Table("Left", "Database", "Age", "Why");
            foreach (var u in unresolved)
                Output.Row(table, u.BranchId, u.Database, Output.Age(TimeSpan.FromSeconds(u.AgeSeconds)), u.Reason);
            output.Write(table);
        }

        WriteHeuristic(output, heuristic);
        return exitCode;
    }

    private static async Task<int> ResolveAsync(RwSplitRecovery recovery, Output output, string branchId, bool commit, CancellationToken cancellationToken)
    {
        try
        {
            await recovery.ForceResolveAsync(branchId, commit, cancellationToken);
        }
        catch (InvalidOperationException ex)
        {
            throw new UsageException(ex.Message + " List them with 'rwsplit tx list' (add --participant for the other databases).");
        }

        var resolution = commit ? "commit" : "rollback";
        if (output.IsJson)
            output.WriteJson(new ResolveDocument(branchId, resolution));
        else
            output.Line($"{branchId}: {(commit ? "committed" : "rolled back")} by hand.");
        return ExitCodes.Healthy;
    }

    private static async Task<int> HeuristicsAsync(RwSplitRecovery recovery, Output output, CancellationToken cancellationToken)
    {
        var inspection = await recovery.InspectAsync(cancellationToken);
        var heuristic = inspection.HeuristicOutcomes.Select(Heuristic).ToList();
        if (output.IsJson)
            output.WriteJson(heuristic);
        else if (heuristic.Count == 0)
            output.Line("No heuristic outcome.");
        else
            WriteHeuristic(output, heuristic);
        return heuristic.Count == 0 ? ExitCodes.Healthy : ExitCodes.Degraded;
    }

    private static async Task<int> AcknowledgeAsync(RwSplitRecovery recovery, Output output, string id, CancellationToken cancellationToken)
    {
        try
        {
            await recovery.AcknowledgeHeuristicAsync(id, cancellationToken);
        }
        catch (InvalidOperationException ex)
        {
            throw new UsageException(ex.Message);
        }

        if (output.IsJson)
            output.WriteJson(new AcknowledgeDocument(id));
        else
            output.Line($"{id}: acknowledged.");
        return ExitCodes.Healthy;
    }

    private static HeuristicDocument Heuristic(HeuristicOutcome h) => new(h.Id, h.Gtrid, h.DecisionDatabase, h.Participant, Output.Round(h.Age.TotalSeconds, 1));

    private static void WriteHeuristic(Output output, List<HeuristicDocument> heuristic)
    {
        if (heuristic.Count == 0)
            return;
        var table = Output.Table("Heuristic outcome", "Transaction", "Decision database", "Participant (work missing)", "Age");
        foreach (var h in heuristic)
            Output.Row(table, h.Id, h.Gtrid, h.DecisionDatabase, h.Participant, Output.Age(TimeSpan.FromSeconds(h.AgeSeconds)));
        output.Write(table);
    }
}

using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Globalization;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;

namespace RwSplit.Transactions;

/// <summary>What a recovery pass would do with one prepared branch (see <see cref="RwSplitRecovery.InspectAsync"/>).</summary>
public enum PlannedRecoveryAction
{
    /// <summary>Commit it: its decision says commit.</summary>
    Commit = 0,

    /// <summary>Roll it back: its decision (or a fence) says abort.</summary>
    Rollback = 1,

    /// <summary>Write an abort fence in its decision database and roll it back: no decision, and older than the grace period.</summary>
    Fence = 2,

    /// <summary>Leave it: no decision yet, and within the grace period (its coordinator may still be committing).</summary>
    Wait = 3,

    /// <summary>Leave it: recovery cannot decide now (decision database unknown to this recovery or unreachable, or not an id RwSplit writes).</summary>
    Unresolvable = 4,
}

/// <summary>One prepared branch and what a recovery pass would do with it now (nothing was done).</summary>
/// <param name="BranchId">The prepared transaction's id (<c>rws:…</c>).</param>
/// <param name="Database">Where it is prepared (free of secrets).</param>
/// <param name="Age">How long it has been prepared.</param>
/// <param name="Gtrid">The distributed transaction's id, or <see langword="null"/> when the id is not one RwSplit writes.</param>
/// <param name="DecisionDatabase">Where its decision is (free of secrets), or <see langword="null"/> when that database is not known to this recovery.</param>
/// <param name="Decision"><c>commit</c>, <c>abort</c>, or <see langword="null"/> when none was written (or it could not be read).</param>
/// <param name="Action">What the next pass would do.</param>
/// <param name="Reason">Why, in words.</param>
public sealed record PreparedBranchInspection(string BranchId, string Database, TimeSpan Age, string? Gtrid, string? DecisionDatabase, string? Decision, PlannedRecoveryAction Action, string Reason);

/// <summary>What a recovery pass would find now, read without changing anything (see <see cref="RwSplitRecovery.InspectAsync"/>).</summary>
/// <param name="Branches">RwSplit's prepared branches in the databases of this recovery's data sources.</param>
/// <param name="HeuristicOutcomes">Heuristic outcomes a pass would report (only with <see cref="RwSplitOptions.AllowHeuristicCommit"/>).</param>
/// <param name="Unreachable">Databases that could not be read (free of secrets), with why.</param>
public sealed record RecoveryInspection(IReadOnlyList<PreparedBranchInspection> Branches, IReadOnlyList<HeuristicOutcome> HeuristicOutcomes, IReadOnlyList<string> Unreachable);

public sealed partial class RwSplitRecovery
{
    /// <summary>
    /// Lists RwSplit's prepared branches with their decisions and what a recovery pass would do with each now, and the
    /// heuristic outcomes a pass would report — without acting: nothing is committed, rolled back, fenced or deleted, and
    /// the decision table is not created where it is missing. A later pass may act differently (a coordinator may finish
    /// meanwhile, a branch may pass its grace period).
    /// </summary>
    /// <param name="cancellationToken">Cancels the inspection.</param>
    public async Task<RecoveryInspection> InspectAsync(CancellationToken cancellationToken = default)
    {
        var branches = new List<PreparedBranchInspection>();
        var unreachable = new List<string>();
        var sources = Known();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var dataSource in sources.Where(_members.ContainsKey))
        {
            if (!dataSource.Dialect.CanPrepare || dataSource.Dialect.Distributed.ListPreparedTransactionsSql is null)
                continue;
            List<(string Id, double Age)> prepared;
            try
            {
                if (!seen.Add(await dataSource.Transactions.GetKeyAsync(true, cancellationToken).ConfigureAwait(false)))
                    continue;
                prepared = await ListPreparedAsync(dataSource, cancellationToken).ConfigureAwait(false);
            }
            catch (DbException ex)
            {
                unreachable.Add($"{dataSource.CurrentPrimaryAddress}: {ex.Message}");
                continue;
            }

            foreach (var (gid, age) in prepared)
                branches.Add(await InspectBranchAsync(dataSource, gid, TimeSpan.FromSeconds(age), sources, cancellationToken).ConfigureAwait(false));
        }

        var heuristic = await InspectHeuristicAsync(sources, unreachable, cancellationToken).ConfigureAwait(false);
        return new RecoveryInspection(branches, heuristic, unreachable);
    }

    private static async Task<PreparedBranchInspection> InspectBranchAsync(RwSplitDataSource branchSource, string gid, TimeSpan age, RwSplitDataSource[] sources, CancellationToken cancellationToken)
    {
        var where = branchSource.CurrentPrimaryAddress.ToString();
        var parts = gid.Split(':');
        if (parts.Length != 5)
            return new(gid, where, age, null, null, null, PlannedRecoveryAction.Unresolvable, "not an id RwSplit writes (expected rws:coordinator:gtrid:decision:branch)");
        var gtrid = parts[2];
        var decisionSource = await FindByKeyAsync(sources, parts[3], cancellationToken).ConfigureAwait(false);
        if (decisionSource is null)
            return new(gid, where, age, gtrid, null, null, PlannedRecoveryAction.Unresolvable, $"its decision database (key {parts[3]}) is not in this recovery or unreachable");
        var decisionDatabase = decisionSource.CurrentPrimaryAddress.ToString();
        string? outcome;
        try
        {
            outcome = await PeekDecisionAsync(decisionSource, gtrid, cancellationToken).ConfigureAwait(false);
        }
        catch (DbException ex)
        {
            return new(gid, where, age, gtrid, decisionDatabase, null, PlannedRecoveryAction.Unresolvable, $"the decision database is unreachable ({ex.Message})");
        }

        var grace = branchSource.Transactions.RecoveryGracePeriod;
        return outcome switch
        {
            "c" => new(gid, where, age, gtrid, decisionDatabase, "commit", PlannedRecoveryAction.Commit, "its decision says commit"),
            "a" => new(gid, where, age, gtrid, decisionDatabase, "abort", PlannedRecoveryAction.Rollback, "its decision (or an abort fence) says abort"),
            _ when age > grace => new(gid, where, age, gtrid, decisionDatabase, null, PlannedRecoveryAction.Fence, $"no decision, and prepared for longer than RecoveryGracePeriod ({grace.TotalSeconds.ToString("0.#", CultureInfo.InvariantCulture)} s): abort"),
            _ => new(gid, where, age, gtrid, decisionDatabase, null, PlannedRecoveryAction.Wait, $"no decision yet, within RecoveryGracePeriod ({grace.TotalSeconds.ToString("0.#", CultureInfo.InvariantCulture)} s): its coordinator may still be committing"),
        };
    }

    /// <summary>The decision's outcome (<c>c</c>, <c>a</c>, <c>h</c>) or null; a missing decision table is no decision (it is not created).</summary>
    private static async Task<string?> PeekDecisionAsync(RwSplitDataSource dataSource, string gtrid, CancellationToken cancellationToken)
    {
        object? value;
        try
        {
            value = await ProviderCalls.ScalarAsync(dataSource, dataSource.Dialect.Distributed.SelectDecisionSql, true, cancellationToken, ("gtrid", gtrid)).ConfigureAwait(false);
        }
        catch (DbException ex) when (IsMissingDecisionTable(ex))
        {
            return null;
        }

        return value is null or DBNull ? null : Convert.ToString(value, CultureInfo.InvariantCulture)?.Trim();
    }

    /// <summary>The heuristic outcomes a pass would report: expectations past the grace period whose participant has no marker row.</summary>
    private async Task<List<HeuristicOutcome>> InspectHeuristicAsync(RwSplitDataSource[] sources, List<string> unreachable, CancellationToken cancellationToken)
    {
        var hazards = new List<HeuristicOutcome>();
        if (!sources.Any(s => s.Transactions.AllowHeuristicCommit))
            return hazards;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var decisionSource in sources.Where(_members.ContainsKey))
        {
            if (decisionSource.Dialect.Distributed.ListHeuristicExpectationsSql is not { } sql)
                continue;
            List<(string Id, double Age)> expectations;
            try
            {
                if (!seen.Add(await decisionSource.Transactions.GetKeyAsync(true, cancellationToken).ConfigureAwait(false)))
                    continue;
                expectations = await ListRowsAsync(decisionSource, sql, cancellationToken).ConfigureAwait(false);
            }
            catch (DbException ex) when (IsMissingDecisionTable(ex))
            {
                continue;
            }
            catch (DbException ex)
            {
                unreachable.Add($"{decisionSource.CurrentPrimaryAddress}: {ex.Message}");
                continue;
            }

            foreach (var (id, age) in expectations)
            {
                var parts = id.Split(':');
                if (parts.Length != 3 || parts[1] != "expect" || TimeSpan.FromSeconds(age) <= decisionSource.Transactions.RecoveryGracePeriod)
                    continue;
                if (await FindByKeyAsync(sources, parts[2], cancellationToken).ConfigureAwait(false) is not { } participant)
                    continue;
                try
                {
                    if (await PeekDecisionAsync(participant, DistributedTransaction.HeuristicId(parts[0], "marker", parts[2]), cancellationToken).ConfigureAwait(false) != "h")
                        hazards.Add(new HeuristicOutcome(id, parts[0], decisionSource.CurrentPrimaryAddress.ToString(), participant.CurrentPrimaryAddress.ToString(), TimeSpan.FromSeconds(age)));
                }
                catch (DbException ex)
                {
                    unreachable.Add($"{participant.CurrentPrimaryAddress}: {ex.Message}");
                }
            }
        }

        return hazards;
    }
}

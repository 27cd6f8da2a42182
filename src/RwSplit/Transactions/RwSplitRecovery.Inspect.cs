using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Threading;
using System.Threading.Tasks;
using RwSplit.Topology;

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
/// <param name="Unreachable">Databases that could not be read (free of secrets), each with the error's kind (<c>socket:ConnectionRefused</c>, <c>sqlstate:57P01</c>, <c>timeout</c>, an exception type: never its message).</param>
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
        void Unreachable(RwSplitDataSource source, DbException ex) => unreachable.Add($"{source.CurrentPrimaryAddress}: {ErrorKinds.Of(ex)}");

        var sources = Known();
        await foreach (var (dataSource, gid, age) in ListPreparedBranchesAsync(sources, Unreachable, cancellationToken).ConfigureAwait(false))
            branches.Add(await InspectBranchAsync(dataSource, gid, age, sources, cancellationToken).ConfigureAwait(false));

        var heuristic = new List<HeuristicOutcome>();
        await foreach (var (decisionSource, id, expectation, age) in ListHeuristicExpectationsAsync(sources, null, Unreachable, cancellationToken).ConfigureAwait(false))
        {
            // A participant not in this recovery: a pass lists the expectation as unresolved, and reports no outcome.
            if (await FindByKeyAsync(sources, expectation.ParticipantKey, cancellationToken).ConfigureAwait(false) is not { } participant)
                continue;
            try
            {
                if (!HeuristicExpectationId.Committed(await PeekDecisionAsync(participant, expectation.MarkerId, cancellationToken).ConfigureAwait(false)))
                    heuristic.Add(Hazard(decisionSource, id, expectation, participant, age));
            }
            catch (DbException ex)
            {
                Unreachable(participant, ex);
            }
        }

        return new RecoveryInspection(branches, heuristic, unreachable);
    }

    /// <summary>Gathers the facts of one branch as <see cref="ResolveAsync"/> does, reading only, and reports what <see cref="RecoveryPlan.Decide"/> decides.</summary>
    private static async Task<PreparedBranchInspection> InspectBranchAsync(RwSplitDataSource branchSource, string gid, TimeSpan age, RwSplitDataSource[] sources, CancellationToken cancellationToken)
    {
        var id = PreparedBranchId.Parse(gid);
        var facts = new BranchFacts(id, age, branchSource.Transactions.RecoveryGracePeriod);
        if (id is not null && await FindByKeyAsync(sources, id.DecisionKey, cancellationToken).ConfigureAwait(false) is { } decisionSource)
        {
            facts = facts with { DecisionDatabase = decisionSource.CurrentPrimaryAddress.ToString() };
            try
            {
                facts = facts with { Outcome = await PeekDecisionAsync(decisionSource, id.Gtrid, cancellationToken).ConfigureAwait(false) };
            }
            catch (DbException ex)
            {
                facts = facts with { DecisionError = ErrorKinds.Of(ex) };
            }
        }

        var plan = RecoveryPlan.Decide(facts);
        return new(gid, branchSource.CurrentPrimaryAddress.ToString(), age, id?.Gtrid, facts.DecisionDatabase, RecoveryPlan.DecisionName(facts.Outcome), plan.Action, plan.Reason);
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

        return DecisionValue(value);
    }
}

using System.Diagnostics;
using RwSplit.Transactions;

namespace RwSplit.Diagnostics;

/// <summary>
/// The spans of distributed transactions and of recovery, when someone listens: the commit (with one child span per
/// phase and branch: <c>rwsplit.transaction.prepare</c>, <c>.decision</c>, <c>.commit_prepared</c>,
/// <c>.rollback_prepared</c>), the rollback, and each recovery action (<c>rwsplit.recovery.commit</c>, <c>.rollback</c>,
/// <c>.fence</c>, <c>.forced_commit</c>, <c>.forced_rollback</c>). Tagged with the data source and the server (address,
/// port, database), never with transaction ids, statements or connection strings.
/// </summary>
internal static class TransactionTelemetry
{
    public const string Prepare = "rwsplit.transaction.prepare";
    public const string Decision = "rwsplit.transaction.decision";
    public const string CommitPrepared = "rwsplit.transaction.commit_prepared";
    public const string RollbackPrepared = "rwsplit.transaction.rollback_prepared";

    /// <summary>The commit of a distributed transaction; <see cref="Ended"/> adds its kind and outcome.</summary>
    public static Activity? StartCommit(int branches) => StartTransaction("rwsplit.transaction.commit", branches);

    /// <summary>The rollback of a distributed transaction.</summary>
    public static Activity? StartRollback(int branches) => StartTransaction("rwsplit.transaction.rollback", branches);

    private static Activity? StartTransaction(string name, int branches)
    {
        if (!RwSplitTelemetry.Source.HasListeners())
            return null;
        var activity = RwSplitTelemetry.Source.StartActivity(name, ActivityKind.Internal);
        activity?.SetTag(TagNames.BranchCount, branches);
        return activity;
    }

    /// <summary>
    /// The kind (read_only, one_phase, two_phase, heuristic, rollback) and outcome (committed, aborted, in_doubt). A
    /// commit that did not commit is an error; a rollback the application asked for is not.
    /// </summary>
    public static void Ended(Activity? activity, string kind, string outcome)
    {
        if (activity is null)
            return;
        activity.SetTag(TagNames.TransactionKind, kind);
        activity.SetTag(TagNames.TransactionOutcome, outcome);
        if (outcome != "committed" && kind != "rollback")
            activity.SetStatus(ActivityStatusCode.Error, outcome);
    }

    /// <summary>One phase on one branch (<see cref="Prepare"/>, <see cref="Decision"/>, <see cref="CommitPrepared"/>, <see cref="RollbackPrepared"/>).</summary>
    public static Activity? StartPhase(string name, Branch branch)
    {
        if (!RwSplitTelemetry.Source.HasListeners())
            return null;
        var activity = RwSplitTelemetry.Source.StartActivity(name, ActivityKind.Internal);
        if (activity is null)
            return null;
        Describe(activity, branch.DataSource);
        activity.SetTag(TagNames.DbNamespace, branch.HomeDatabase);
        activity.SetTag(TagNames.BranchIndex, branch.Index);
        return activity;
    }

    /// <summary>One recovery action on the database of <paramref name="dataSource"/>: commit, rollback, fence, forced_commit, forced_rollback.</summary>
    public static Activity? StartRecoveryAction(string action, RwSplitDataSource dataSource)
    {
        if (!RwSplitTelemetry.Source.HasListeners())
            return null;
        var activity = RwSplitTelemetry.Source.StartActivity("rwsplit.recovery." + action, ActivityKind.Internal);
        if (activity is null)
            return null;
        Describe(activity, dataSource);
        activity.SetTag(TagNames.RecoveryAction, action);
        return activity;
    }

    private static void Describe(Activity activity, RwSplitDataSource dataSource)
    {
        activity.SetTag(TagNames.DbSystem, dataSource.Dialect.SystemName);
        activity.SetTag(TagNames.DataSource, dataSource.Name);
        RouteTelemetry.SetServer(activity, dataSource.CurrentPrimaryAddress);
    }
}

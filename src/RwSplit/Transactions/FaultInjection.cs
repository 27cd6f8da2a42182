using System;

namespace RwSplit.Transactions;

/// <summary>
/// Named points of the commit and recovery protocols where tests inject faults (kill the process, cut a connection,
/// restart a server, slow down). Inert unless a test sets <see cref="Hook"/>: production code pays one null check.
/// </summary>
internal static class FaultInjection
{
    public const string BeforePrepare = "before-prepare";
    public const string AfterPrepare = "after-prepare";
    public const string BeforeDecision = "before-decision";
    /// <summary>
    /// The decision row is written and its COMMIT not yet sent; where the dialect sends both in one statement
    /// (<see cref="Providers.TransactionStatements.InsertDecisionAndCommitSql"/>), the last point before that statement.
    /// Either way a crash here leaves no committed decision, and the caller's token no longer applies after it.
    /// </summary>
    public const string AfterDecisionInsert = "after-decision-insert";
    public const string DecisionCommitReplyLost = "decision-commit-reply-lost";
    public const string AfterDecisionCommit = "after-decision-commit";
    public const string BetweenCommitPrepared = "between-commit-prepared";
    public const string AfterCommitPrepared = "after-commit-prepared";
    public const string RecoveryBeforeResolve = "recovery-before-resolve";

    /// <summary>Before each heuristic participant's commit (only with AllowHeuristicCommit; not in <see cref="All"/>).</summary>
    public const string BeforeHeuristicCommit = "before-heuristic-commit";

    /// <summary>Every named point, in protocol order.</summary>
    public static readonly string[] All =
    [
        BeforePrepare, AfterPrepare, BeforeDecision, AfterDecisionInsert, DecisionCommitReplyLost, AfterDecisionCommit,
        BetweenCommitPrepared, AfterCommitPrepared,
    ];

    /// <summary>Called at every point with its name and the branch concerned (null when none).</summary>
    public static Action<string, object?>? Hook { get; set; }

    public static void Hit(string point, object? branch = null) => Hook?.Invoke(point, branch);
}

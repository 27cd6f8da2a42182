using System;

namespace RwSplit.Providers;

/// <summary>
/// What distributed transactions and their recovery need of one engine: the two-phase commit statements (when the
/// engine can prepare a transaction and commit it later from any session, as PostgreSQL's <c>PREPARE TRANSACTION</c>),
/// the decision table's statements, and how to recognise a duplicate decision. A dialect without them
/// (<see cref="RwSplitDialect.TransactionStatements"/> is <see langword="null"/>) takes no part in distributed transactions.
/// </summary>
public abstract class TransactionStatements
{
    /// <summary>
    /// Whether the engine can prepare a transaction and commit it later from any session. When <see langword="false"/>
    /// (SQL Server outside MSDTC), a branch of this engine can only be the last resource of a distributed transaction.
    /// </summary>
    public virtual bool CanPrepare => false;

    /// <summary>Prepares the session's transaction under <paramref name="gid"/> (it survives the session and a restart).</summary>
    /// <param name="gid">The branch id (letters, digits, <c>:</c> and <c>-</c> only).</param>
    public virtual string PrepareTransactionSql(string gid) => throw CannotPrepare();

    /// <summary>Commits a prepared transaction.</summary>
    /// <param name="gid">The branch id.</param>
    public virtual string CommitPreparedSql(string gid) => throw CannotPrepare();

    /// <summary>Rolls back a prepared transaction.</summary>
    /// <param name="gid">The branch id.</param>
    public virtual string RollbackPreparedSql(string gid) => throw CannotPrepare();

    /// <summary>
    /// Lists RwSplit's prepared transactions of the connected database: rows of (branch id, seconds since prepared).
    /// Prepared transactions whose id starts with <c>rws:</c>.
    /// </summary>
    public virtual string? ListPreparedTransactionsSql => null;

    /// <summary>Returns one integer: how many prepared transactions the server allows (0: prepared transactions are disabled).</summary>
    public virtual string? MaxPreparedTransactionsSql => null;

    /// <summary>One text value identifying the connected database across processes (same on every connection to it).</summary>
    public abstract string DatabaseIdentitySql { get; }

    /// <summary>
    /// Creates the decision table if it does not exist: <c>rwsplit_decisions (gtrid text primary key, outcome char(1):
    /// 'c' commit, 'a' abort fence or 'h' heuristic marker/expectation, coordinator text, created timestamp)</c>.
    /// </summary>
    public abstract string CreateDecisionTableSql { get; }

    /// <summary>Inserts a decision row; parameters <c>@gtrid</c>, <c>@outcome</c>, <c>@coordinator</c>. Fails on a duplicate key.</summary>
    public virtual string InsertDecisionSql => "INSERT INTO rwsplit_decisions (gtrid, outcome, coordinator) VALUES (@gtrid, @outcome, @coordinator)";

    /// <summary>
    /// The decision insert (parameters as <see cref="InsertDecisionSql"/>) followed by the COMMIT of the session's
    /// transaction, as one statement the engine runs in one round trip and stops at the first error (so a duplicate
    /// decision never commits); <see langword="null"/> (the default) to send the insert and the commit separately. The
    /// provider must treat a transaction ended by the statement as completed, as it does after <c>PREPARE TRANSACTION</c>.
    /// </summary>
    public virtual string? InsertDecisionAndCommitSql => null;

    /// <summary>
    /// Whether the coordinator prepares its decision insert (<see cref="System.Data.Common.DbCommand.Prepare"/>) on the
    /// last resource's connection: worth it where the provider keeps prepared statements per pooled physical connection
    /// and prepares without explicit parameter sizes (Npgsql). Default: <see langword="false"/>.
    /// </summary>
    public virtual bool PrepareCoordinatorStatements => false;

    /// <summary>Reads a decision; parameter <c>@gtrid</c>; one row with the outcome character, or none.</summary>
    public virtual string SelectDecisionSql => "SELECT outcome FROM rwsplit_decisions WHERE gtrid = @gtrid";

    /// <summary>Deletes one decision-table row; parameter <c>@gtrid</c>.</summary>
    public virtual string DeleteDecisionSql => "DELETE FROM rwsplit_decisions WHERE gtrid = @gtrid";

    /// <summary>
    /// Lists the heuristic-participant expectations recorded in this database's decision table (outcome <c>'h'</c>, id
    /// <c>{gtrid}:expect:{participant key}</c>): rows of (id, seconds since written). <see langword="null"/> for engines
    /// that never hold such rows (they can prepare, so a transaction never needs a heuristic participant).
    /// </summary>
    public virtual string? ListHeuristicExpectationsSql => null;

    /// <summary>Deletes decisions older than <c>@days</c> days (housekeeping).</summary>
    public virtual string? PurgeDecisionsSql => null;

    /// <summary>Whether <paramref name="exception"/> is a duplicate-key violation (a decision or fence already exists).</summary>
    /// <param name="exception">The exception.</param>
    public virtual bool IsUniqueViolation(Exception exception) => false;

    private static NotSupportedException CannotPrepare() => new("This engine cannot prepare transactions: it can only be the last resource of a distributed transaction.");
}

using System;
using Npgsql;
using RwSplit.Providers;

namespace RwSplit.PostgreSql;

/// <summary>PostgreSQL's distributed-transaction statements: <c>PREPARE TRANSACTION</c> and the decision table.</summary>
internal sealed class NpgsqlTransactionStatements : TransactionStatements
{
    public static NpgsqlTransactionStatements Instance { get; } = new();

    /// <inheritdoc />
    public override bool PrepareCoordinatorStatements => true;

    /// <inheritdoc />
    public override bool CanPrepare => true;

    /// <inheritdoc />
    /// <remarks>
    /// Npgsql sends both statements before one Sync: after an error the server skips the COMMIT, and a transaction the
    /// COMMIT ended leaves the <c>NpgsqlTransaction</c> completed (Npgsql follows the server's transaction status).
    /// </remarks>
    public override string? InsertDecisionAndCommitSql => InsertDecisionSql + "; COMMIT";

    /// <inheritdoc />
    public override string PrepareTransactionSql(string gid) => $"PREPARE TRANSACTION '{CheckGid(gid)}'";

    /// <inheritdoc />
    public override string CommitPreparedSql(string gid) => $"COMMIT PREPARED '{CheckGid(gid)}'";

    /// <inheritdoc />
    public override string RollbackPreparedSql(string gid) => $"ROLLBACK PREPARED '{CheckGid(gid)}'";

    /// <inheritdoc />
    public override string? ListPreparedTransactionsSql
        => "SELECT gid, extract(epoch FROM now() - prepared)::float8 FROM pg_prepared_xacts WHERE gid LIKE 'rws:%' AND database = current_database()";

    /// <inheritdoc />
    public override string? MaxPreparedTransactionsSql => "SELECT current_setting('max_prepared_transactions')::int";

    /// <inheritdoc />
    public override string DatabaseIdentitySql => "SELECT system_identifier::text || '/' || current_database() FROM pg_control_system()";

    /// <inheritdoc />
    public override string CreateDecisionTableSql => """
        CREATE TABLE IF NOT EXISTS rwsplit_decisions (
            gtrid text PRIMARY KEY,
            outcome char(1) NOT NULL CHECK (outcome IN ('c', 'a')),
            coordinator text NOT NULL,
            created timestamptz NOT NULL DEFAULT now())
        """;

    /// <inheritdoc />
    public override string? PurgeDecisionsSql => "DELETE FROM rwsplit_decisions WHERE created < now() - make_interval(days => @days)";

    /// <inheritdoc />
    public override bool IsUniqueViolation(Exception exception)
        => exception is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation };

    private static string CheckGid(string gid)
    {
        ArgumentException.ThrowIfNullOrEmpty(gid);
        foreach (var c in gid)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is ':' or '-'))
                throw new ArgumentException($"Invalid character in branch id '{gid}'.", nameof(gid));
        }

        return gid;
    }
}

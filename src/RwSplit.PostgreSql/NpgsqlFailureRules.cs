using System;
using System.Data.Common;
using Npgsql;
using RwSplit.Providers;

namespace RwSplit.PostgreSql;

/// <summary>
/// PostgreSQL's failures: the SQLSTATEs of a lost session and of a hot standby's refusals (the pool is cleared by
/// <see cref="NpgsqlEndpointConnector"/>).
/// </summary>
internal sealed class NpgsqlFailureRules : FailureRules
{
    private NpgsqlFailureRules()
    {
    }

    public static NpgsqlFailureRules Instance { get; } = new();

    /// <summary>
    /// Also a connection failure: the server shutting down or terminating the backend (SQLSTATE class 57P), and a replica
    /// cancelling a query because of a conflict with recovery (40001 with the hot-standby message), which another server
    /// can answer.
    /// </summary>
    /// <param name="exception">The exception.</param>
    /// <param name="connection">The connection.</param>
    public override bool IsConnectionFailure(Exception exception, DbConnection connection)
        => exception switch
        {
            // A reply of the server: only those saying the session is gone (shutdown, crash, idle timeout, connection
            // errors) or that replay cancelled the statement count. A statement error after which Npgsql closes the
            // connection (classes 53, 58, F0, XX raised by one query) is the statement's, not the server's.
            PostgresException pg => pg.SqlState is "57P01" or "57P02" or "57P03" or "57P05"
                                    || pg.SqlState.StartsWith("08", StringComparison.Ordinal)
                                    || (pg.SqlState == PostgresErrorCodes.SerializationFailure && pg.MessageText.Contains("recovery", StringComparison.Ordinal)),
            NpgsqlException { InnerException: System.IO.IOException or System.Net.Sockets.SocketException or TimeoutException } => true,
            _ => base.IsConnectionFailure(exception, connection),
        };

    /// <summary>
    /// A hot standby's refusals: SQLSTATE 25006 (read-only transaction), and the refusals PostgreSQL words as "… during
    /// recovery" under other codes — 0A000 (<c>cannot set transaction read-write mode during recovery</c>), XX000
    /// (<c>cannot assign TransactionIds during recovery</c>, e.g. <c>txid_current()</c> inside a view) and 55000. The
    /// statement did nothing on the standby, so it can run again on the primary.
    /// </summary>
    /// <param name="exception">The exception thrown by the provider.</param>
    public override bool IsReadOnlyViolation(Exception exception)
        => exception is PostgresException { SqlState: PostgresErrorCodes.ReadOnlySqlTransaction }
           || exception is PostgresException { SqlState: PostgresErrorCodes.FeatureNotSupported or PostgresErrorCodes.InternalError or PostgresErrorCodes.ObjectNotInPrerequisiteState } pg
              && pg.MessageText.Contains("during recovery", StringComparison.Ordinal);
}

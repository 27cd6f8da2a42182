using System;
using System.Collections.Generic;
using System.Data.Common;
using Microsoft.Data.SqlClient;
using RwSplit.Providers;

namespace RwSplit.SqlServer;

/// <summary>SQL Server's failures: error severities that end a session and the read-only errors (the pool is cleared by <see cref="SqlServerEndpointConnector"/>).</summary>
internal sealed class SqlServerFailureRules : FailureRules
{
    /// <summary>SQL Server errors meaning "this server is read-only here", so the statement did nothing.</summary>
    private static readonly HashSet<int> ReadOnlyErrors =
    [
        3906, // Failed to update database because the database is read-only.
        3908, // Could not run BEGIN TRANSACTION in database because the database is in bypass recovery mode / read-only.
        16000, // Only read-intent connections are allowed on this secondary (write attempted).
    ];

    private SqlServerFailureRules()
    {
    }

    public static SqlServerFailureRules Instance { get; } = new();

    /// <summary>
    /// Also a connection failure: a <see cref="SqlException"/> of severity 20 or more — SqlClient's transport-level errors
    /// ("A transport-level error has occurred…") and server errors that end the session. On the async path SqlClient may
    /// still report the broken connection as open when the exception arrives, so the state alone does not tell.
    /// </summary>
    /// <param name="exception">The exception.</param>
    /// <param name="connection">The connection.</param>
    public override bool IsConnectionFailure(Exception exception, DbConnection connection)
        => base.IsConnectionFailure(exception, connection) || exception is SqlException { Class: >= 20 };

    /// <inheritdoc />
    /// <remarks>SqlClient reports its command timeout as error number -2 ("Execution Timeout Expired").</remarks>
    public override bool IsStatementTimeout(Exception exception)
        => exception is SqlException { Number: -2 } || base.IsStatementTimeout(exception);

    /// <inheritdoc />
    public override bool IsReadOnlyViolation(Exception exception)
    {
        if (exception is not SqlException sql)
            return false;
        foreach (SqlError error in sql.Errors)
        {
            if (ReadOnlyErrors.Contains(error.Number))
                return true;
        }

        return false;
    }
}

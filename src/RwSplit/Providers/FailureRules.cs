using System;
using System.Data;
using System.Data.Common;

namespace RwSplit.Providers;

/// <summary>
/// How one engine and its provider report failures: which exceptions mean the connection or its server failed (the
/// endpoint is ejected, a read retried elsewhere), which mean a read-only server refused a write (retried on the
/// primary). Everything else is the statement's or the caller's
/// error and surfaces unchanged. The defaults (<see cref="Default"/>) know no engine's error codes.
/// </summary>
public class FailureRules
{
    /// <summary>Initializes the rules.</summary>
    protected FailureRules()
    {
    }

    /// <summary>The rules of an engine without error codes of its own: timeouts, I/O failures and closed connections.</summary>
    public static FailureRules Default { get; } = new();

    /// <summary>
    /// Whether <paramref name="exception"/>, thrown by <paramref name="connection"/>, means the connection or its server
    /// failed (as opposed to an error in the statement or in the caller's input), so that the endpoint is ejected and a
    /// read that returned no row yet is retried on another server. Only a failure the server or the network caused may
    /// count: the default is a timeout or I/O failure, or a provider error or refusal on a connection that is no longer
    /// open; never a client-side error (<see cref="IsClientSideError"/>), even when the provider closed the connection
    /// because of it. Engines add their connection-loss errors and keep statement errors out.
    /// </summary>
    /// <param name="exception">The exception.</param>
    /// <param name="connection">The provider connection that ran the statement.</param>
    public virtual bool IsConnectionFailure(Exception exception, DbConnection connection)
    {
        ArgumentNullException.ThrowIfNull(exception);
        ArgumentNullException.ThrowIfNull(connection);
        if (IsClientSideError(exception))
            return false;
        return exception is TimeoutException or System.IO.IOException or System.Net.Sockets.SocketException
               || exception.InnerException is TimeoutException or System.IO.IOException or System.Net.Sockets.SocketException
               || (exception is DbException or InvalidOperationException && connection.State is not ConnectionState.Open);
    }

    /// <summary>
    /// Whether <paramref name="exception"/> is the provider's timeout of a statement (its <c>CommandTimeout</c> ran
    /// out): the execution's time is spent, so it is never retried elsewhere (that would give the statement a second
    /// full timeout) and never counts against the server (the statement was slow; whether the server is down is the
    /// monitor's to find out). The provider closed that one connection, which is forgotten, and nothing else. The
    /// default: a <see cref="TimeoutException"/>, or a provider error caused by one.
    /// </summary>
    /// <param name="exception">The exception thrown by the provider.</param>
    public virtual bool IsStatementTimeout(Exception exception)
        => exception is TimeoutException || exception is DbException { InnerException: TimeoutException };

    /// <summary>
    /// Whether <paramref name="exception"/> is the provider refusing the caller's input before or while sending it (a
    /// parameter value it cannot write, a value out of range, an unsupported type): the caller's mistake, which never
    /// counts against a server and is never retried elsewhere.
    /// </summary>
    /// <param name="exception">The exception.</param>
    protected static bool IsClientSideError(Exception exception)
        => exception is InvalidCastException or ArgumentException or FormatException or OverflowException or NotSupportedException;

    /// <summary>
    /// Whether <paramref name="exception"/> says that the server refused a statement because it is read-only
    /// (PostgreSQL SQLSTATE 25006, SQL Server error 3906). Such a statement did nothing and can be retried on the primary.
    /// The default: never.
    /// </summary>
    /// <param name="exception">The exception thrown by the provider.</param>
    public virtual bool IsReadOnlyViolation(Exception exception) => false;
}

using System;
using System.Data.Common;
using System.Net.Sockets;

namespace RwSplit.Topology;

/// <summary>
/// The kind of a failure, for health checks and tools: a short code made only of the exception's type, its socket error
/// code or its SQLSTATE, never of its message (a provider's message may name users, hosts or parts of a connection string).
/// </summary>
internal static class ErrorKinds
{
    /// <summary>The probe's query returned no row.</summary>
    public const string NoRow = "no_row";

    /// <summary>No answer within the probe's or the open's time limit.</summary>
    public const string Timeout = "timeout";

    /// <summary>
    /// <c>timeout</c>, <c>socket:ConnectionRefused</c> (any <see cref="SocketError"/>), <c>sqlstate:28P01</c> (the
    /// server's error code), or else the innermost exception's type name.
    /// </summary>
    public static string Of(Exception failure)
    {
        string? sqlState = null;
        var innermost = failure;
        for (var e = failure; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                case SocketException socket:
                    return "socket:" + socket.SocketErrorCode;
                case TimeoutException or OperationCanceledException:
                    return Timeout;
                case DbException { SqlState: { Length: 5 } state } when sqlState is null && IsCode(state):
                    sqlState = state;
                    break;
            }

            innermost = e;
        }

        return sqlState is not null ? "sqlstate:" + sqlState : innermost.GetType().Name;
    }

    private static bool IsCode(string state)
    {
        foreach (var c in state)
        {
            if (!char.IsAsciiLetterOrDigit(c))
                return false;
        }

        return true;
    }
}

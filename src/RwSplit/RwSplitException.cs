using System;
using System.Data.Common;

namespace RwSplit;

/// <summary>What went wrong in RwSplit itself (as opposed to an error the database returned).</summary>
public enum RwSplitError
{
    /// <summary>A <see cref="Routing.RwSplitScope.PreventWrites"/> scope refused a statement that writes or might write.</summary>
    WriteBlocked = 1,

    /// <summary>A physical connection to an endpoint could not be opened. The message names the endpoint (never the password).</summary>
    EndpointUnreachable = 2,

    /// <summary>A connection string or option is invalid.</summary>
    InvalidConfiguration = 3,

    /// <summary>No replica qualified and <see cref="RwSplitOptions.FallbackReadLimit"/> reads already run on the primary.</summary>
    FallbackLimitReached = 4,

    /// <summary>
    /// A consistency token is malformed, of an unknown version, forged or altered, signed with a key the data source
    /// does not have (<see cref="RwSplitOptions.ConsistencyTokenKeys"/>), from another database cluster, or asks for a
    /// replication position the primary never reached.
    /// </summary>
    InvalidConsistencyToken = 5,

    /// <summary>The primary changed (failover) while this logical connection used the old one; reopen the connection.</summary>
    PrimaryChanged = 6,

    /// <summary>
    /// A distributed transaction cannot include this database: prepared transactions disabled, decision table missing,
    /// the data source not registered for recovery, or a second SQL Server instance.
    /// </summary>
    DistributedTransactionUnavailable = 7,

    /// <summary>
    /// The command's (or batch's) timeout expired inside RwSplit: while it waited for a replica to catch up or for a
    /// fallback slot, or before a retry. The timeout bounds the whole logical execution, not only the provider's call.
    /// </summary>
    CommandTimeout = 8,
}

/// <summary>An error raised by RwSplit. The message names the fix; it never contains a password or a full connection string.</summary>
public sealed class RwSplitException : DbException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="error">What went wrong.</param>
    /// <param name="message">The message, naming the fix.</param>
    /// <param name="innerException">The provider's exception, if any.</param>
    public RwSplitException(RwSplitError error, string message, Exception? innerException = null)
        : base(message, innerException)
        => Error = error;

    /// <summary>What went wrong.</summary>
    public RwSplitError Error { get; }

    /// <summary>The endpoint involved, free of secrets, when there is one.</summary>
    public Topology.EndpointAddress? Endpoint { get; init; }

    /// <summary>
    /// Whether retrying the operation may succeed: <see langword="true"/> for an unreachable endpoint when the provider says
    /// its error is transient.
    /// </summary>
    public override bool IsTransient => Error switch
    {
        RwSplitError.EndpointUnreachable => InnerException is DbException { IsTransient: true },
        RwSplitError.FallbackLimitReached or RwSplitError.PrimaryChanged or RwSplitError.CommandTimeout => true,
        _ => false,
    };
}

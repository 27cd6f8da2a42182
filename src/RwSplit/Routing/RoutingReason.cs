namespace RwSplit.Routing;

/// <summary>Why a command went where it went. Carried by logs, traces and metrics (as the lower-case name).</summary>
public enum RoutingReason
{
    /// <summary>A read with nothing keeping it from a replica.</summary>
    Read = 0,

    /// <summary>A call of a procedure declared read-only in <see cref="RwSplitOptions.ReadOnlyProcedures"/>.</summary>
    ReadOnlyProcedure,

    /// <summary>The text carries <c>rwsplit:replica</c>: the caller asserts the statement only reads.</summary>
    ReplicaHint,

    /// <summary>A statement that writes.</summary>
    Write,

    /// <summary>A statement the classifier could not read (fails closed).</summary>
    UnknownStatement,

    /// <summary>A stored procedure not declared read-only.</summary>
    StoredProcedure,

    /// <summary>A read that calls a function that may write (volatile, or not found in the database's catalog).</summary>
    VolatileFunction,

    /// <summary>A text that a replica once rejected as a write; remembered as a write.</summary>
    LearnedWrite,

    /// <summary>The retry on the primary of a statement a replica rejected as a write.</summary>
    MisrouteRetry,

    /// <summary>The connection has a local <see cref="System.Data.Common.DbTransaction"/>.</summary>
    LocalTransaction,

    /// <summary>An ambient <see cref="System.Transactions.Transaction"/> is active.</summary>
    AmbientTransaction,

    /// <summary>The statement creates session state that cannot be replayed (temporary table, lock, cursor, isolation).</summary>
    SessionState,

    /// <summary>An earlier statement pinned this logical connection to the primary.</summary>
    PinnedSession,

    /// <summary>The text carries <c>rwsplit:primary</c>.</summary>
    PrimaryHint,

    /// <summary>The command's <see cref="RwSplitCommand.Target"/> asks for the primary.</summary>
    CommandTarget,

    /// <summary>An <see cref="RwSplitScope.ForcePrimary"/> scope is active.</summary>
    ForcePrimaryScope,

    /// <summary>The consistency in force is <see cref="ReadConsistency.Strong"/>.</summary>
    StrongConsistency,

    /// <summary>Read-your-writes: this session wrote, and no replica is known to have replayed the write.</summary>
    ReadYourWrites,

    /// <summary>No replica is configured or available.</summary>
    NoReplicaAvailable,

    /// <summary>A <see cref="RwSplitScope.PreventWrites"/> scope refused a statement that writes or might write.</summary>
    WriteBlocked,

    /// <summary>Read-your-writes: a replica known to have replayed this session's writes.</summary>
    CaughtUpReplica,

    /// <summary>
    /// Read-your-writes: this session wrote, no replica is known to have replayed the write yet, and the session's
    /// connection to the primary is open: the read runs there at once (<see cref="RwSplit.ReadAfterWrite.OpenPrimary"/>).
    /// </summary>
    ReadAfterWrite,

    /// <summary>A read that could run anywhere, served by the primary because it had spare capacity (<see cref="RwSplitOptions.PrimaryReadWeight"/>).</summary>
    PrimaryCapacity,
}

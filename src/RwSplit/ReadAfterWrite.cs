namespace RwSplit;

/// <summary>
/// Under <see cref="ReadConsistency.ReadYourWrites"/>, where a read goes right after the session's own write, while no
/// replica is known to have replayed it (<see cref="RwSplitOptions.ReadAfterWrite"/>).
/// </summary>
public enum ReadAfterWrite
{
    /// <summary>
    /// The default. The read runs on the connection to the primary the session already holds open (the one its write
    /// ran on): one round trip, as without RwSplit, and no position query, no wait and no second physical connection.
    /// The session's later reads stay there while no replica is known to have its writes; a new connection from the
    /// data source reads from replicas again. Reads that went to the primary for another reason (a hint, a scope)
    /// are not writes: later reads look for a replica as before.
    /// </summary>
    OpenPrimary = 0,

    /// <summary>
    /// The read goes to a replica that has replayed the write: RwSplit asks the primary for its position after the
    /// write and waits up to <see cref="RwSplitOptions.ReadYourWritesTimeout"/> for a replica to reach it, then falls
    /// back to the primary. Keeps reads off the primary at the price of two or more extra round trips per read after a
    /// write.
    /// </summary>
    WaitForReplica = 1,
}

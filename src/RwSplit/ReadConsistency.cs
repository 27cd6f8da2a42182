namespace RwSplit;

/// <summary>What a read may see, relative to writes made before it.</summary>
public enum ReadConsistency
{
    /// <summary>Any available replica may serve a read, however far behind it is.</summary>
    Eventual = 0,

    /// <summary>
    /// The default. A read that follows a write of the same session (logical connection) never misses that write: it runs
    /// on a replica only when the replica is known to have replayed it, otherwise on the primary.
    /// </summary>
    ReadYourWrites = 1,

    /// <summary>Every statement runs on the primary.</summary>
    Strong = 2,
}

namespace RwSplit.Routing;

/// <summary>What routing needs to know about the logical connection and the caller's overrides, for one command.</summary>
internal readonly struct SessionState
{
    /// <summary>The logical connection has a local transaction.</summary>
    public bool InLocalTransaction { get; init; }

    /// <summary>An ambient <see cref="System.Transactions.Transaction"/> is active.</summary>
    public bool InAmbientTransaction { get; init; }

    /// <summary>Earlier session state pinned the logical connection to the primary.</summary>
    public bool Pinned { get; init; }

    /// <summary>This session wrote (read-your-writes must then avoid replicas that may not have the write).</summary>
    public bool HasWritten { get; init; }

    /// <summary>
    /// The logical connection holds an open connection to the current primary: a read there needs no new physical
    /// connection (<see cref="ReadAfterWrite.OpenPrimary"/>, <see cref="RwSplitOptions.PrimaryReadWeight"/>).
    /// </summary>
    public bool PrimaryOpen { get; init; }

    /// <summary>The session's last read ran on the primary for its spare capacity: its reads stay there, as on a replica.</summary>
    public bool ReadsOnPrimary { get; init; }

    /// <summary>The session wrote since the primary's position was last asked: no replica can be known to have that write.</summary>
    public bool WritePending { get; init; }

    /// <summary>The replica this logical connection already uses, or -1: reads stay on it while it is available.</summary>
    public int CurrentReplica { get; init; }

    /// <summary>Replicas this logical connection failed to use (bit i = replica i).</summary>
    public ulong ExcludedReplicas { get; init; }

    /// <summary>The command's own <see cref="RwSplitCommand.Target"/>.</summary>
    public RouteTarget CommandTarget { get; init; }

    /// <summary>A <see cref="RwSplitScope.ForcePrimary"/> scope is active.</summary>
    public bool ForcePrimaryScope { get; init; }

    /// <summary>A <see cref="RwSplitScope.PreventWrites"/> scope is active.</summary>
    public bool PreventWrites { get; init; }

    public static SessionState Fresh { get; } = new() { CurrentReplica = -1 };
}

namespace RwSplit.Topology;

/// <summary>
/// The replicas routing may choose from at one instant, and what balancing reads. A value: building one allocates
/// nothing.
/// </summary>
internal readonly struct TopologySnapshot
{
    /// <summary>The most replicas one data source supports (one bit each).</summary>
    public const int MaxReplicas = 64;

    public TopologySnapshot(int replicaCount, ulong availableReplicas, ulong caughtUpReplicas = ulong.MaxValue, ReplicaBalancing balancing = ReplicaBalancing.RoundRobin, Endpoint[]? replicas = null)
    {
        ReplicaCount = replicaCount;
        AvailableReplicas = availableReplicas;
        CaughtUpReplicas = caughtUpReplicas;
        Balancing = balancing;
        Replicas = replicas;
    }

    /// <summary>How many replicas are configured.</summary>
    public int ReplicaCount { get; }

    /// <summary>Bit i set: replica i is healthy and may serve reads now.</summary>
    public ulong AvailableReplicas { get; }

    /// <summary>Bit i set: replica i is known to have replayed this session's writes (read-your-writes).</summary>
    public ulong CaughtUpReplicas { get; }

    public ReplicaBalancing Balancing { get; }

    /// <summary>The replicas' live load counters (outstanding commands, latency), for the load-aware strategies.</summary>
    public Endpoint[]? Replicas { get; }

    public bool IsAvailable(int replica) => replica >= 0 && replica < ReplicaCount && (AvailableReplicas & (1UL << replica)) != 0;

    public static TopologySnapshot AllAvailable(int replicaCount)
        => new(replicaCount, replicaCount >= MaxReplicas ? ulong.MaxValue : (1UL << replicaCount) - 1);
}

namespace RwSplit.Topology;

/// <summary>The replicas routing may choose from at one instant. A value: building one allocates nothing.</summary>
internal readonly struct TopologySnapshot
{
    /// <summary>The most replicas one data source supports (one bit each in <see cref="AvailableReplicas"/>).</summary>
    public const int MaxReplicas = 64;

    public TopologySnapshot(int replicaCount, ulong availableReplicas)
    {
        ReplicaCount = replicaCount;
        AvailableReplicas = availableReplicas;
    }

    /// <summary>How many replicas are configured.</summary>
    public int ReplicaCount { get; }

    /// <summary>Bit i set: replica i may serve reads now.</summary>
    public ulong AvailableReplicas { get; }

    public bool IsAvailable(int replica) => replica >= 0 && replica < ReplicaCount && (AvailableReplicas & (1UL << replica)) != 0;

    public static TopologySnapshot AllAvailable(int replicaCount)
        => new(replicaCount, replicaCount >= MaxReplicas ? ulong.MaxValue : (1UL << replicaCount) - 1);
}

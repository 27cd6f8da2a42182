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

    /// <summary>The data source's read placement beyond the replicas: where a read after a write goes, and the primary's read weight with its load counter.</summary>
    public TopologySnapshot(int replicaCount, ulong availableReplicas, ulong caughtUpReplicas, ReplicaBalancing balancing, Endpoint[]? replicas, ReadAfterWrite readAfterWrite, double primaryReadWeight, Endpoint? primary, ReplicaWeights? weights = null)
        : this(replicaCount, availableReplicas, caughtUpReplicas, balancing, replicas)
    {
        ReadAfterWrite = readAfterWrite;
        PrimaryReadWeight = primaryReadWeight;
        Primary = primary;
        Weights = weights;
    }

    /// <summary>The replicas' read weights (<see cref="RwSplitOptions.ReplicaWeights"/>); null: all equal.</summary>
    public ReplicaWeights? Weights { get; }

    /// <summary>Replica <paramref name="replica"/>'s read weight (1 when all are equal).</summary>
    public double WeightOf(int replica) => Weights is { } weights ? weights[replica] : 1;

    /// <summary>Where a read-your-writes read goes while no replica is known to have the session's writes.</summary>
    public ReadAfterWrite ReadAfterWrite { get; }

    /// <summary>The primary's share of reads relative to one replica (<see cref="RwSplitOptions.PrimaryReadWeight"/>); 0: none.</summary>
    public double PrimaryReadWeight { get; }

    /// <summary>The current primary's load counter, for <see cref="PrimaryReadWeight"/>.</summary>
    public Endpoint? Primary { get; }

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

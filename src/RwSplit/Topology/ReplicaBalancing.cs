namespace RwSplit;

/// <summary>How reads are spread over the available replicas.</summary>
public enum ReplicaBalancing
{
    /// <summary>Each new logical connection takes the next replica in turn.</summary>
    RoundRobin = 0,

    /// <summary>Of two replicas drawn in turn, the one with fewer commands in flight (power of two choices).</summary>
    LeastOutstanding = 1,

    /// <summary>Of two replicas drawn in turn, the one with the lower probe latency (exponentially weighted moving average).</summary>
    LatencyAware = 2,
}

/// <summary>What a read gets when <see cref="RwSplitOptions.FallbackReadLimit"/> reads already run on the primary for want of a replica.</summary>
public enum FallbackOverflow
{
    /// <summary>Wait for a slot, up to <see cref="RwSplitOptions.FallbackWaitTimeout"/>, then fail.</summary>
    Wait = 0,

    /// <summary>Fail at once with <see cref="RwSplitError.FallbackLimitReached"/>.</summary>
    Throw = 1,
}

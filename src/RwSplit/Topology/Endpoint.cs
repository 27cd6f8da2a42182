using System;
using System.Diagnostics;
using System.Threading;

namespace RwSplit.Topology;

/// <summary>One configured server of a data source, with the little runtime state routing reads.</summary>
internal sealed class Endpoint
{
    private long _skipUntilTimestamp;

    public Endpoint(EndpointConnector connector, int replicaIndex)
    {
        Connector = connector;
        ReplicaIndex = replicaIndex;
    }

    public EndpointConnector Connector { get; }

    public EndpointAddress Address => Connector.Address;

    public EndpointRole Role => Connector.Role;

    /// <summary>Index among the replicas, or -1 for the primary.</summary>
    public int ReplicaIndex { get; }

    /// <summary>Whether the endpoint may be tried now (not inside a back-off after a failed open).</summary>
    public bool IsAvailable(long nowTimestamp) => nowTimestamp >= Volatile.Read(ref _skipUntilTimestamp);

    /// <summary>Skips the endpoint for <paramref name="delay"/> after a failed open.</summary>
    public void MarkUnreachable(TimeSpan delay)
        => Volatile.Write(ref _skipUntilTimestamp, Stopwatch.GetTimestamp() + (long)(delay.TotalSeconds * Stopwatch.Frequency));

    public override string ToString() => Connector.ToString();
}

namespace RwSplit.Topology;

/// <summary>The role an endpoint plays in a replica set.</summary>
public enum EndpointRole
{
    /// <summary>The read-write server.</summary>
    Primary = 0,

    /// <summary>A read-only copy of the primary.</summary>
    Replica = 1,
}

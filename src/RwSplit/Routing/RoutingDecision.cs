using System;

namespace RwSplit.Routing;

/// <summary>The result of routing one command: where it goes and why.</summary>
public readonly struct RoutingDecision : IEquatable<RoutingDecision>
{
    internal RoutingDecision(RouteTarget target, int replicaIndex, RoutingReason reason)
    {
        Target = target;
        ReplicaIndex = replicaIndex;
        Reason = reason;
    }

    internal static RoutingDecision ToPrimary(RoutingReason reason) => new(RouteTarget.Primary, -1, reason);

    internal static RoutingDecision ToReplica(int index, RoutingReason reason) => new(RouteTarget.Replica, index, reason);

    /// <summary><see cref="RouteTarget.Primary"/>, <see cref="RouteTarget.Replica"/>, or <see cref="RouteTarget.None"/> when refused.</summary>
    public RouteTarget Target { get; }

    /// <summary>The index of the replica in <see cref="RwSplitOptions.Replicas"/>, or -1.</summary>
    public int ReplicaIndex { get; }

    /// <summary>Why.</summary>
    public RoutingReason Reason { get; }

    /// <inheritdoc />
    public bool Equals(RoutingDecision other) => Target == other.Target && ReplicaIndex == other.ReplicaIndex && Reason == other.Reason;

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is RoutingDecision other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Target, ReplicaIndex, Reason);

    /// <summary>Equality.</summary>
    public static bool operator ==(RoutingDecision left, RoutingDecision right) => left.Equals(right);

    /// <summary>Inequality.</summary>
    public static bool operator !=(RoutingDecision left, RoutingDecision right) => !left.Equals(right);

    /// <inheritdoc />
    public override string ToString() => Target == RouteTarget.Replica ? $"replica[{ReplicaIndex}] ({Reason})" : $"{Target} ({Reason})";
}

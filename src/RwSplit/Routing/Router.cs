using System.Numerics;
using RwSplit.Topology;

namespace RwSplit.Routing;

/// <summary>
/// The routing decision: a pure function of the statement, the session, the consistency in force and the topology.
/// No I/O, no allocation, no shared state: table-tested in isolation.
/// </summary>
internal static class Router
{
    /// <param name="facts">What the statement does.</param>
    /// <param name="session">The logical connection's state and the caller's overrides.</param>
    /// <param name="consistency">The consistency in force for this command.</param>
    /// <param name="topology">The replicas available now.</param>
    /// <param name="balancerTicket">A number that advances for every new replica choice (round-robin).</param>
    public static RoutingDecision Route(in StatementFacts facts, in SessionState session, ReadConsistency consistency, in TopologySnapshot topology, uint balancerTicket)
    {
        var mayWrite = facts.Kind != StatementKind.Read && !(facts.Kind == StatementKind.Unknown && facts.Hint == RoutingHint.Replica);

        if (mayWrite && session.PreventWrites)
            return new RoutingDecision(RouteTarget.None, -1, RoutingReason.WriteBlocked);

        // Transactions and pinned sessions first: whatever the statement, it must see the session's own state.
        if (session.InLocalTransaction)
            return RoutingDecision.ToPrimary(RoutingReason.LocalTransaction);
        if (session.InAmbientTransaction)
            return RoutingDecision.ToPrimary(RoutingReason.AmbientTransaction);
        if (session.Pinned)
            return RoutingDecision.ToPrimary(RoutingReason.PinnedSession);
        if (facts.SessionEffect == SessionEffect.Pin)
            return RoutingDecision.ToPrimary(RoutingReason.SessionState);

        if (mayWrite)
            return RoutingDecision.ToPrimary(facts.Cause);

        // A read from here on.
        if (facts.Hint == RoutingHint.Primary)
            return RoutingDecision.ToPrimary(RoutingReason.PrimaryHint);
        if (session.CommandTarget == RouteTarget.Primary)
            return RoutingDecision.ToPrimary(RoutingReason.CommandTarget);
        if (session.ForcePrimaryScope)
            return RoutingDecision.ToPrimary(RoutingReason.ForcePrimaryScope);
        if (consistency == ReadConsistency.Strong && session.CommandTarget != RouteTarget.Replica)
            return RoutingDecision.ToPrimary(RoutingReason.StrongConsistency);
        if (consistency == ReadConsistency.ReadYourWrites && session.HasWritten && session.CommandTarget != RouteTarget.Replica)
            return RoutingDecision.ToPrimary(RoutingReason.ReadYourWrites);

        var usable = topology.AvailableReplicas & ~session.ExcludedReplicas;
        if (topology.ReplicaCount < TopologySnapshot.MaxReplicas)
            usable &= (1UL << topology.ReplicaCount) - 1;
        if (usable == 0)
            return RoutingDecision.ToPrimary(RoutingReason.NoReplicaAvailable);

        var reason = facts.Kind == StatementKind.Unknown ? RoutingReason.ReplicaHint : facts.Cause;

        // Stay on the replica this session already uses: one physical connection per role, session settings intact.
        if (session.CurrentReplica >= 0 && (usable & (1UL << session.CurrentReplica)) != 0)
            return RoutingDecision.ToReplica(session.CurrentReplica, reason);

        return RoutingDecision.ToReplica(PickRoundRobin(usable, balancerTicket), reason);
    }

    /// <summary>The (ticket mod n)-th set bit of <paramref name="usable"/>.</summary>
    private static int PickRoundRobin(ulong usable, uint ticket)
    {
        var count = BitOperations.PopCount(usable);
        var skip = (int)(ticket % (uint)count);
        for (var i = 0; i < skip; i++)
            usable &= usable - 1; // clear lowest set bit
        return BitOperations.TrailingZeroCount(usable);
    }
}

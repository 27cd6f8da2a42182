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
        var mayWrite = facts.MayWrite;

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

        var usable = topology.AvailableReplicas & ~session.ExcludedReplicas;
        if (topology.ReplicaCount < TopologySnapshot.MaxReplicas)
            usable &= (1UL << topology.ReplicaCount) - 1;
        if (usable == 0)
            return RoutingDecision.ToPrimary(RoutingReason.NoReplicaAvailable);

        // Read-your-writes: only replicas known to have replayed this session's writes qualify.
        if (consistency == ReadConsistency.ReadYourWrites && session.HasWritten && session.CommandTarget != RouteTarget.Replica)
        {
            usable &= topology.CaughtUpReplicas;
            if (usable == 0)
            {
                // None has the write yet: the primary has it, and a read on the session's open connection there costs
                // one round trip, where finding a replica costs a position query and a wait.
                return RoutingDecision.ToPrimary(session.PrimaryOpen && session.WritePending && topology.ReadAfterWrite == ReadAfterWrite.OpenPrimary
                    ? RoutingReason.ReadAfterWrite
                    : RoutingReason.ReadYourWrites);
            }
        }

        var reason = facts.Kind == StatementKind.Unknown ? RoutingReason.ReplicaHint
            : consistency == ReadConsistency.ReadYourWrites && session.HasWritten && facts.Cause == RoutingReason.Read && session.CommandTarget != RouteTarget.Replica ? RoutingReason.CaughtUpReplica
            : facts.Cause;

        // Stay on the replica this session already uses: one physical connection per role, session settings intact.
        if (session.CurrentReplica >= 0 && (usable & (1UL << session.CurrentReplica)) != 0)
            return RoutingDecision.ToReplica(session.CurrentReplica, reason);

        var primaryMayRead = topology.PrimaryReadWeight > 0 && session.CommandTarget == RouteTarget.Auto && facts.Hint == RoutingHint.None;
        if (primaryMayRead && session.ReadsOnPrimary)
            return RoutingDecision.ToPrimary(RoutingReason.PrimaryCapacity); // stay, as on a replica
        var pick = Pick(usable, balancerTicket, topology);
        if (primaryMayRead && PrimaryHasSpareCapacity(pick, topology))
            return RoutingDecision.ToPrimary(RoutingReason.PrimaryCapacity);
        return RoutingDecision.ToReplica(pick, reason);
    }

    /// <summary>
    /// Whether the primary takes this read instead of replica <paramref name="pick"/> (<see cref="RwSplitOptions.PrimaryReadWeight"/>):
    /// it has fewer outstanding commands per unit of weight than the replica once this read is added. Ties go to the
    /// replica, so that with nothing in flight (sequential use) reads stay on the replicas. A primary the monitor's last
    /// probe did not reach takes none: the replicas keep serving reads while it is down.
    /// </summary>
    private static bool PrimaryHasSpareCapacity(int pick, in TopologySnapshot topology)
    {
        if (topology.Primary is not { } primary || topology.Replicas is not { } replicas || !primary.MayServe)
            return false;
        return (primary.Outstanding + 1) * topology.WeightOf(pick) < (replicas[pick].Outstanding + 1) * topology.PrimaryReadWeight;
    }

    /// <summary>
    /// Round-robin: the (ticket mod n)-th usable replica, or with <see cref="RwSplitOptions.ReplicaWeights"/> a draw in
    /// proportion to the weights. Load-aware: of the two replicas offered for this ticket and the next, the one with
    /// fewer commands in flight per unit of weight, or the lower probe latency (power of two choices: spreads load
    /// without herding onto one replica). A tie (nothing in flight: sequential use) keeps the first offer, so that reads
    /// follow the round-robin (or weighted) draw.
    /// </summary>
    private static int Pick(ulong usable, uint ticket, in TopologySnapshot topology)
    {
        var weights = topology.Weights;
        if (weights is not null)
            usable = weights.Preferred(usable);
        var first = Offer(usable, ticket, weights);
        if (topology.Balancing == ReplicaBalancing.RoundRobin || topology.Replicas is null || BitOperations.PopCount(usable) < 2)
            return first;
        var second = Offer(usable, ticket + 1, weights);
        var a = topology.Replicas[first];
        var b = topology.Replicas[second];
        var preferSecond = topology.Balancing == ReplicaBalancing.LeastOutstanding
            ? b.Outstanding * topology.WeightOf(first) < a.Outstanding * topology.WeightOf(second)
            : b.LatencyEwmaMs < a.LatencyEwmaMs;
        return preferSecond ? second : first;
    }

    private static int Offer(ulong usable, uint ticket, ReplicaWeights? weights)
        => weights is not null && weights.Pick(usable, ticket) is var weighted and >= 0 ? weighted : PickRoundRobin(usable, ticket);

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

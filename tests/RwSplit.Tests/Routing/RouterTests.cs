using System.Collections.Generic;
using NUnit.Framework;
using RwSplit.Routing;
using RwSplit.Tests.Fakes;
using RwSplit.Topology;

namespace RwSplit.Tests.Routing;

/// <summary>The routing decision as a truth table: statement × session × consistency × topology → target and reason.</summary>
public sealed class RouterTests
{
    private static readonly StatementFacts Read = StatementFacts.Read;
    private static readonly StatementFacts Write = StatementFacts.Write;
    private static readonly StatementFacts Unknown = new(StatementKind.Unknown, RoutingReason.UnknownStatement);
    private static readonly StatementFacts Volatile = new(StatementKind.Unknown, RoutingReason.VolatileFunction);
    private static readonly StatementFacts Procedure = new(StatementKind.Write, RoutingReason.StoredProcedure);
    private static readonly StatementFacts ReadOnlyProcedure = new(StatementKind.Read, RoutingReason.ReadOnlyProcedure);
    private static readonly StatementFacts UnknownWithReplicaHint = new(StatementKind.Unknown, RoutingReason.UnknownStatement, hint: RoutingHint.Replica);
    private static readonly StatementFacts WriteWithReplicaHint = new(StatementKind.Write, RoutingReason.Write, hint: RoutingHint.Replica);
    private static readonly StatementFacts ReadWithPrimaryHint = new(StatementKind.Read, RoutingReason.Read, hint: RoutingHint.Primary);
    private static readonly StatementFacts PinningRead = new(StatementKind.Read, RoutingReason.Read, SessionEffect.Pin);
    private static readonly StatementFacts ReplayedSet = new(StatementKind.Read, RoutingReason.Read, SessionEffect.Replay);

    private static readonly SessionState Fresh = SessionState.Fresh;
    private static readonly TopologySnapshot Two = TopologySnapshot.AllAvailable(2);
    private static readonly TopologySnapshot None = TopologySnapshot.AllAvailable(0);
    private static readonly TopologySnapshot SecondOnly = new(2, 0b10);
    private static readonly TopologySnapshot NoneAvailable = new(2, 0);

    private static RoutingDecision P(RoutingReason reason) => RoutingDecision.ToPrimary(reason);

    private static RoutingDecision R(int index, RoutingReason reason = RoutingReason.Read) => RoutingDecision.ToReplica(index, reason);

    private static TestCaseData Case(string name, StatementFacts facts, SessionState session, ReadConsistency consistency, TopologySnapshot topology, RoutingDecision expected, uint ticket = 0)
        => new TestCaseData(facts, session, consistency, topology, ticket).Returns(expected).SetName(name);

    private static IEnumerable<TestCaseData> Cases()
    {
        const ReadConsistency E = ReadConsistency.Eventual;
        const ReadConsistency RYW = ReadConsistency.ReadYourWrites;
        const ReadConsistency S = ReadConsistency.Strong;

        // Statement nature
        yield return Case("read → replica", Read, Fresh, RYW, Two, R(0));
        yield return Case("read, ticket 1 → second replica", Read, Fresh, RYW, Two, R(1), ticket: 1);
        yield return Case("read, ticket 2 wraps → first replica", Read, Fresh, RYW, Two, R(0), ticket: 2);
        yield return Case("write → primary", Write, Fresh, E, Two, P(RoutingReason.Write));
        yield return Case("unknown → primary (fails closed)", Unknown, Fresh, E, Two, P(RoutingReason.UnknownStatement));
        yield return Case("volatile function → primary", Volatile, Fresh, E, Two, P(RoutingReason.VolatileFunction));
        yield return Case("procedure → primary", Procedure, Fresh, E, Two, P(RoutingReason.StoredProcedure));
        yield return Case("read-only procedure → replica", ReadOnlyProcedure, Fresh, E, Two, R(0, RoutingReason.ReadOnlyProcedure));
        yield return Case("unknown with replica hint → replica", UnknownWithReplicaHint, Fresh, E, Two, R(0, RoutingReason.ReplicaHint));
        yield return Case("write with replica hint → still primary", WriteWithReplicaHint, Fresh, E, Two, P(RoutingReason.Write));
        yield return Case("read with primary hint → primary", ReadWithPrimaryHint, Fresh, E, Two, P(RoutingReason.PrimaryHint));
        yield return Case("pinning statement → primary", PinningRead, Fresh, E, Two, P(RoutingReason.SessionState));
        yield return Case("replayed SET → where reads go", ReplayedSet, Fresh, E, Two, R(0));

        // Session
        yield return Case("read in local transaction → primary", Read, Fresh with { InLocalTransaction = true }, E, Two, P(RoutingReason.LocalTransaction));
        yield return Case("read in ambient transaction → primary", Read, Fresh with { InAmbientTransaction = true }, E, Two, P(RoutingReason.AmbientTransaction));
        yield return Case("read on pinned session → primary", Read, Fresh with { Pinned = true }, E, Two, P(RoutingReason.PinnedSession));
        yield return Case("read stays on the session's replica", Read, Fresh with { CurrentReplica = 1 }, E, Two, R(1));
        yield return Case("session's replica unavailable → another", Read, Fresh with { CurrentReplica = 0 }, E, SecondOnly, R(1));
        yield return Case("excluded replica skipped", Read, Fresh with { ExcludedReplicas = 0b01 }, E, Two, R(1));
        yield return Case("all replicas excluded → primary", Read, Fresh with { ExcludedReplicas = 0b11 }, E, Two, P(RoutingReason.NoReplicaAvailable));
        yield return Case("no replicas configured → primary", Read, Fresh, E, None, P(RoutingReason.NoReplicaAvailable));
        yield return Case("no replica available → primary", Read, Fresh, E, NoneAvailable, P(RoutingReason.NoReplicaAvailable));
        yield return Case("only second available → second", Read, Fresh, E, SecondOnly, R(1));

        // Consistency
        yield return Case("strong read → primary", Read, Fresh, S, Two, P(RoutingReason.StrongConsistency));
        yield return Case("RYW read after write, no replica caught up → primary", Read, Fresh with { HasWritten = true }, RYW, new TopologySnapshot(2, 0b11, 0), P(RoutingReason.ReadYourWrites));
        yield return Case("RYW read after write, replica 1 caught up → replica 1", Read, Fresh with { HasWritten = true }, RYW, new TopologySnapshot(2, 0b11, 0b10), R(1, RoutingReason.CaughtUpReplica));
        yield return Case("RYW read after write, caught-up replica unavailable → primary", Read, Fresh with { HasWritten = true }, RYW, new TopologySnapshot(2, 0b01, 0b10), P(RoutingReason.ReadYourWrites));
        yield return Case("RYW session replica not caught up → the caught-up one", Read, Fresh with { HasWritten = true, CurrentReplica = 0 }, RYW, new TopologySnapshot(2, 0b11, 0b10), R(1, RoutingReason.CaughtUpReplica));
        yield return Case("RYW caught-up mask ignored before any write", Read, Fresh, RYW, new TopologySnapshot(2, 0b11, 0), R(0));
        yield return Case("RYW read after write, none caught up, primary open → that primary at once", Read, Fresh with { HasWritten = true, PrimaryOpen = true, WritePending = true }, RYW, new TopologySnapshot(2, 0b11, 0), P(RoutingReason.ReadAfterWrite));
        yield return Case("RYW read after write, none caught up, primary open, WaitForReplica → read-your-writes (waits)", Read, Fresh with { HasWritten = true, PrimaryOpen = true, WritePending = true }, RYW, Placement(new TopologySnapshot(2, 0b11, 0), ReadAfterWrite.WaitForReplica), P(RoutingReason.ReadYourWrites));
        yield return Case("RYW read after write, replica 1 caught up, primary open → replica 1", Read, Fresh with { HasWritten = true, PrimaryOpen = true, WritePending = true }, RYW, new TopologySnapshot(2, 0b11, 0b10), R(1, RoutingReason.CaughtUpReplica));
        yield return Case("RYW read before any write, primary open → replica", Read, Fresh with { PrimaryOpen = true }, RYW, Two, R(0));
        yield return Case("RYW read after a read on the primary (floor, no write), none caught up → read-your-writes (waits)", Read, Fresh with { HasWritten = true, PrimaryOpen = true }, RYW, new TopologySnapshot(2, 0b11, 0), P(RoutingReason.ReadYourWrites));
        yield return Case("eventual read after write, primary open → replica", Read, Fresh with { HasWritten = true, PrimaryOpen = true, WritePending = true }, E, new TopologySnapshot(2, 0b11, 0), R(0));
        yield return Case("RYW read after write, no replica available, primary open → no replica available", Read, Fresh with { HasWritten = true, PrimaryOpen = true, WritePending = true }, RYW, NoneAvailable, P(RoutingReason.NoReplicaAvailable));
        yield return Case("eventual ignores the caught-up mask", Read, Fresh with { HasWritten = true }, E, new TopologySnapshot(2, 0b11, 0), R(0));
        yield return Case("RYW read before any write → replica", Read, Fresh, RYW, Two, R(0));
        yield return Case("eventual read after write → replica", Read, Fresh with { HasWritten = true }, E, Two, R(0));
        yield return Case("command asks replica under strong → replica", Read, Fresh with { CommandTarget = RouteTarget.Replica }, S, Two, R(0));
        yield return Case("command asks replica after write in RYW → replica", Read, Fresh with { HasWritten = true, CommandTarget = RouteTarget.Replica }, RYW, Two, R(0));
        yield return Case("command asks replica for a write → primary", Write, Fresh with { CommandTarget = RouteTarget.Replica }, E, Two, P(RoutingReason.Write));
        yield return Case("command asks replica in transaction → primary", Read, Fresh with { CommandTarget = RouteTarget.Replica, InLocalTransaction = true }, E, Two, P(RoutingReason.LocalTransaction));

        // Overrides
        yield return Case("command asks primary → primary", Read, Fresh with { CommandTarget = RouteTarget.Primary }, E, Two, P(RoutingReason.CommandTarget));
        yield return Case("force-primary scope → primary", Read, Fresh with { ForcePrimaryScope = true }, E, Two, P(RoutingReason.ForcePrimaryScope));
        yield return Case("prevent-writes blocks a write", Write, Fresh with { PreventWrites = true }, E, Two, new RoutingDecision(RouteTarget.None, -1, RoutingReason.WriteBlocked));
        yield return Case("prevent-writes blocks an unknown", Unknown, Fresh with { PreventWrites = true }, E, Two, new RoutingDecision(RouteTarget.None, -1, RoutingReason.WriteBlocked));
        yield return Case("prevent-writes blocks a volatile function", Volatile, Fresh with { PreventWrites = true }, E, Two, new RoutingDecision(RouteTarget.None, -1, RoutingReason.WriteBlocked));
        yield return Case("prevent-writes blocks a write even in a transaction", Write, Fresh with { PreventWrites = true, InLocalTransaction = true }, E, Two, new RoutingDecision(RouteTarget.None, -1, RoutingReason.WriteBlocked));
        yield return Case("prevent-writes lets reads through", Read, Fresh with { PreventWrites = true }, E, Two, R(0));
        yield return Case("prevent-writes lets a replica-hinted unknown through", UnknownWithReplicaHint, Fresh with { PreventWrites = true }, E, Two, R(0, RoutingReason.ReplicaHint));
    }

    [TestCaseSource(nameof(Cases))]
    public RoutingDecision Route(object facts, object session, ReadConsistency consistency, object topology, uint ticket)
        => Router.Route((StatementFacts)facts, (SessionState)session, consistency, (TopologySnapshot)topology, ticket); // internal types: boxed through the public test signature

    [Test]
    public void Round_robin_visits_every_available_replica_evenly()
    {
        var topology = new TopologySnapshot(5, 0b10110); // replicas 1, 2, 4
        var counts = new int[5];
        for (uint ticket = 0; ticket < 300; ticket++)
        {
            var decision = Router.Route(Read, Fresh, ReadConsistency.Eventual, topology, ticket);
            counts[decision.ReplicaIndex]++;
        }

        Assert.That(counts, Is.EqualTo(new[] { 0, 100, 100, 0, 100 }));
    }

    [Test]
    public void Least_outstanding_prefers_the_less_busy_of_two_candidates()
    {
        var replicas = new[] { Replica("lo-a"), Replica("lo-b"), Replica("lo-c") };
        replicas[0].BeginCommand();
        replicas[0].BeginCommand();
        replicas[1].BeginCommand();
        var topology = new TopologySnapshot(3, 0b111, ulong.MaxValue, ReplicaBalancing.LeastOutstanding, replicas);
        Assert.That(Router.Route(Read, Fresh, ReadConsistency.Eventual, topology, 0).ReplicaIndex, Is.EqualTo(1), "ticket 0 offers 0 and 1: 1 has fewer in flight");
        Assert.That(Router.Route(Read, Fresh, ReadConsistency.Eventual, topology, 1).ReplicaIndex, Is.EqualTo(2), "ticket 1 offers 1 and 2: 2 has none");
        Assert.That(Router.Route(Read, Fresh, ReadConsistency.Eventual, topology, 2).ReplicaIndex, Is.EqualTo(2), "ticket 2 offers 2 and 0");
        var roundRobin = new TopologySnapshot(3, 0b111, ulong.MaxValue, ReplicaBalancing.RoundRobin, replicas);
        Assert.That(Router.Route(Read, Fresh, ReadConsistency.Eventual, roundRobin, 0).ReplicaIndex, Is.EqualTo(0), "round-robin ignores load");
    }

    [Test]
    public void Latency_aware_prefers_the_faster_of_two_candidates_and_spreads_over_the_rest()
    {
        var replicas = new[] { Replica("lat-a"), Replica("lat-b"), Replica("lat-c") };
        Probe(replicas[0], 5.0);
        Probe(replicas[1], 1.0);
        Probe(replicas[2], 2.0);
        var topology = new TopologySnapshot(3, 0b111, ulong.MaxValue, ReplicaBalancing.LatencyAware, replicas);
        var counts = new int[3];
        for (uint ticket = 0; ticket < 300; ticket++)
            counts[Router.Route(Read, Fresh, ReadConsistency.Eventual, topology, ticket).ReplicaIndex]++;
        Assert.That(counts, Is.EqualTo(new[] { 0, 200, 100 }), "the slowest never wins a pair; the fastest wins both of its pairs");
    }

    private static TopologySnapshot Placement(in TopologySnapshot topology, ReadAfterWrite readAfterWrite, double primaryReadWeight = 0, Endpoint? primary = null, Endpoint[]? replicas = null, ReplicaBalancing balancing = ReplicaBalancing.RoundRobin)
        => new(topology.ReplicaCount, topology.AvailableReplicas, topology.CaughtUpReplicas, balancing, replicas ?? topology.Replicas, readAfterWrite, primaryReadWeight, primary);

    [Test]
    public void The_primary_takes_a_read_when_it_has_fewer_outstanding_commands_per_unit_of_weight()
    {
        var primary = Replica("pw-primary");
        var replicas = new[] { Replica("pw-a"), Replica("pw-b") };
        RoutingDecision Route(double weight, in SessionState session, StatementFacts? facts = null, ReadConsistency consistency = ReadConsistency.Eventual)
            => Router.Route(facts ?? Read, session, consistency, Placement(Two, ReadAfterWrite.OpenPrimary, weight, primary, replicas, ReplicaBalancing.LeastOutstanding), 0);

        Assert.That(Route(1, Fresh), Is.EqualTo(R(0)), "nothing in flight anywhere: ties go to the replica");
        replicas[0].BeginCommand();
        replicas[1].BeginCommand();
        Assert.That(Route(0, Fresh), Is.EqualTo(R(0)), "weight 0: never the primary");
        Assert.That(Route(1, Fresh), Is.EqualTo(P(RoutingReason.PrimaryCapacity)), "weight 1: 1 in flight on each replica, none on the primary");
        Assert.That(Route(0.5, Fresh), Is.EqualTo(R(0)), "weight 0.5: (0 + 1) / 0.5 is not below 1 + 1");
        replicas[0].BeginCommand();
        replicas[1].BeginCommand();
        Assert.That(Route(0.5, Fresh), Is.EqualTo(P(RoutingReason.PrimaryCapacity)), "weight 0.5: (0 + 1) / 0.5 < 2 + 1");
        primary.BeginCommand();
        primary.BeginCommand();
        Assert.That(Route(1, Fresh), Is.EqualTo(R(0)), "the primary's writes count: 2 in flight, as many as on each replica");
        Assert.That(Route(2, Fresh), Is.EqualTo(P(RoutingReason.PrimaryCapacity)), "weight 2: (2 + 1) / 2 < 2 + 1");

        // What keeps a read off the primary whatever its load, and what sends it there at once.
        Assert.That(Route(2, Fresh with { CurrentReplica = 1 }), Is.EqualTo(R(1)), "the session's replica first");
        Assert.That(Route(2, Fresh with { CommandTarget = RouteTarget.Replica }), Is.EqualTo(R(0)), "the command asks for a replica");
        Assert.That(Route(2, Fresh, UnknownWithReplicaHint), Is.EqualTo(R(0, RoutingReason.ReplicaHint)), "the text asks for a replica");
        Assert.That(Route(0.01, Fresh with { PrimaryOpen = true }), Is.EqualTo(R(0)), "a session on the primary already (it wrote) is no reason: only load is");
        Assert.That(Route(0.01, Fresh with { PrimaryOpen = true, ReadsOnPrimary = true }), Is.EqualTo(P(RoutingReason.PrimaryCapacity)), "a session reading there stays, as on a replica");
        Assert.That(Route(0, Fresh with { PrimaryOpen = true, ReadsOnPrimary = true }), Is.EqualTo(R(0)), "weight 0: never");

        Assert.That(Route(2, Fresh with { HasWritten = true }, consistency: ReadConsistency.ReadYourWrites), Is.EqualTo(P(RoutingReason.PrimaryCapacity)), "caught-up replicas (all, here) and the primary compete alike");

        // A primary the monitor cannot reach takes no reads: the replicas serve them while it is down.
        primary.RecordProbe(ProbeResult.Failed("connection refused", "network", 0), ProbeOutcome.Failed, 0, 0, 3, false);
        Assert.That(Route(2, Fresh), Is.EqualTo(R(0)), "its last probe failed");
    }

    private static TopologySnapshot Weighted(double[] weights, ulong available = ulong.MaxValue, ReplicaBalancing balancing = ReplicaBalancing.RoundRobin, Endpoint[]? replicas = null, double primaryReadWeight = 0, Endpoint? primary = null)
        => new(weights.Length, available & ((1UL << weights.Length) - 1), ulong.MaxValue, balancing, replicas, ReadAfterWrite.OpenPrimary, primaryReadWeight, primary, ReplicaWeights.From(weights));

    private static int[] Shares(in TopologySnapshot topology, int tickets)
    {
        var counts = new int[topology.ReplicaCount];
        for (var ticket = 0u; ticket < tickets; ticket++)
        {
            var decision = Router.Route(Read, Fresh, ReadConsistency.Eventual, topology, ticket);
            Assert.That(decision.Target, Is.EqualTo(RouteTarget.Replica));
            counts[decision.ReplicaIndex]++;
        }

        return counts;
    }

    [Test]
    public void Replica_weights_share_new_reads_in_proportion()
    {
        Assert.That(ReplicaWeights.From([]), Is.Null, "no weights");
        Assert.That(ReplicaWeights.From([2, 2, 2]), Is.Null, "equal weights route exactly as none");

        var shares = Shares(Weighted([1, 3]), 4000);
        Assert.That(shares[0], Is.InRange(950, 1050), "weight 1 of 4");
        Assert.That(shares[1], Is.InRange(2950, 3050), "weight 3 of 4");

        shares = Shares(Weighted([0.5, 1, 2.5]), 400);
        Assert.That(shares, Is.EqualTo(new[] { 50, 100, 250 }).Within(8), "fractional weights, and close already over few tickets");

        shares = Shares(Weighted([1, 3], available: 0b01), 100);
        Assert.That(shares, Is.EqualTo(new[] { 100, 0 }), "the heavier replica unavailable: the other takes every read");
    }

    [Test]
    public void A_replica_of_weight_0_serves_reads_only_when_no_other_can()
    {
        Assert.That(Shares(Weighted([0, 1, 1]), 300), Is.EqualTo(new[] { 0, 150, 150 }));
        Assert.That(Shares(Weighted([0, 1, 1], available: 0b001), 10), Is.EqualTo(new[] { 10, 0, 0 }), "the only usable replica");
        Assert.That(Shares(Weighted([0, 0, 1], available: 0b011), 10), Is.EqualTo(new[] { 5, 5, 0 }), "only weight-0 replicas usable: evenly among them");
        Assert.That(Router.Route(Read, Fresh with { CurrentReplica = 0 }, ReadConsistency.Eventual, Weighted([0, 1]), 0), Is.EqualTo(R(0)), "a session already there stays (its session state is there)");
    }

    [Test]
    public void Least_outstanding_and_the_primary_compare_commands_in_flight_per_unit_of_weight()
    {
        var replicas = new[] { Replica("w-a"), Replica("w-b") };
        var topology = Weighted([1, 2], balancing: ReplicaBalancing.LeastOutstanding, replicas: replicas);
        uint TicketOffering(int first)
        {
            for (var ticket = 0u; ; ticket++)
            {
                if (Router.Route(Read, Fresh, ReadConsistency.Eventual, Weighted([1, 2]), ticket).ReplicaIndex == first && Router.Route(Read, Fresh, ReadConsistency.Eventual, Weighted([1, 2]), ticket + 1).ReplicaIndex != first)
                    return ticket;
            }
        }

        var offersA = TicketOffering(0);
        Assert.That(Router.Route(Read, Fresh, ReadConsistency.Eventual, topology, offersA), Is.EqualTo(R(0)), "nothing in flight: the weighted draw's offer");
        for (var i = 0; i < 3; i++)
            replicas[0].BeginCommand();
        for (var i = 0; i < 4; i++)
            replicas[1].BeginCommand();
        Assert.That(Router.Route(Read, Fresh, ReadConsistency.Eventual, topology, offersA), Is.EqualTo(R(1)), "4 / 2 < 3 / 1 in flight per unit of weight: the heavier replica has room");
        replicas[1].BeginCommand();
        replicas[1].BeginCommand();
        Assert.That(Router.Route(Read, Fresh, ReadConsistency.Eventual, topology, offersA), Is.EqualTo(R(0)), "6 / 2 is not below 3 / 1: a tie keeps the offer");
        replicas[1].BeginCommand();
        Assert.That(Router.Route(Read, Fresh, ReadConsistency.Eventual, topology, offersA), Is.EqualTo(R(0)), "7 / 2 > 3 / 1");

        // The primary (weight 1) against a replica of weight 2, both with 2 in flight.
        var primary = Replica("w-primary");
        primary.BeginCommand();
        primary.BeginCommand();
        var lone = new[] { Replica("w-c") };
        lone[0].BeginCommand();
        lone[0].BeginCommand();
        Assert.That(Router.Route(Read, Fresh, ReadConsistency.Eventual, Weighted([2, 1], available: 0b01, replicas: [lone[0], Replica("w-d")], primaryReadWeight: 1, primary: primary), 0), Is.EqualTo(R(0)), "weight 2 replica: (2 + 1) / 2 < (2 + 1) / 1, it keeps the read");
        Assert.That(Router.Route(Read, Fresh, ReadConsistency.Eventual, Weighted([0.5, 1], available: 0b01, replicas: [lone[0], Replica("w-e")], primaryReadWeight: 1, primary: primary), 0), Is.EqualTo(P(RoutingReason.PrimaryCapacity)), "weight 0.5 replica: the primary has more room");
    }

    private static Endpoint Replica(string name)
        => new(FakeDialect.Instance.CreateConnector($"Server={name}", EndpointRole.Replica), 0);

    private static void Probe(Endpoint endpoint, double latencyMs)
        => endpoint.RecordProbe(new ProbeResult(true, true, 1, 0, "x", latencyMs, 0, null), ProbeOutcome.Healthy, 0, 0, 3, true);

    [Test]
    public void Sixty_four_replicas_are_addressable()
    {
        var topology = TopologySnapshot.AllAvailable(64);
        Assert.That(Router.Route(Read, Fresh, ReadConsistency.Eventual, topology, 63).ReplicaIndex, Is.EqualTo(63));
    }
}

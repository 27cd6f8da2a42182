using System;
using System.Threading;
using NUnit.Framework;
using RwSplit.Connections;
using RwSplit.Routing;
using RwSplit.Tests.Fakes;
using RwSplit.Topology;

namespace RwSplit.Tests.Connections;

/// <summary>The watermark's rules on their own: which replicas have a session's writes, by position and by time.</summary>
public class WriteWatermarkTests
{
    [Test]
    public void Without_positions_a_write_s_floor_is_taken_when_the_next_read_needs_it_not_when_the_write_was_routed()
    {
        var replicas = new[] { Replica() };
        var watermark = new WriteWatermark();
        watermark.MarkWritten(); // routed to the primary; the statement runs and commits after this
        Thread.Sleep(20);
        Probe(replicas[0], lagSeconds: 0); // a probe while the write runs: its data may predate the commit
        watermark.Synced(null); // the next read asks: the primary has no position to give

        Assert.That(watermark.CaughtUp(replicas), Is.EqualTo(0UL), "a replica probed before the write completed is not known to have it");
    }

    [Test]
    public void Without_positions_a_replica_whose_data_is_newer_than_the_floor_has_the_writes()
    {
        var replicas = new[] { Replica(), Replica() };
        var watermark = new WriteWatermark();
        watermark.MarkWritten();
        watermark.Synced(null);
        Thread.Sleep(20);
        Probe(replicas[0], lagSeconds: 0);
        Probe(replicas[1], lagSeconds: 5);

        Assert.That(watermark.CaughtUp(replicas), Is.EqualTo(0b01UL), "the one without lag has replayed past the floor; the one 5 s behind has not");
    }

    [Test]
    public void With_positions_the_primary_s_answer_decides()
    {
        var replicas = new[] { Replica(), Replica() };
        var watermark = new WriteWatermark();
        watermark.MarkWritten();
        Assert.That(watermark.Unsynced, Is.True);
        watermark.Synced(100);
        replicas[0].ObservePosition(99);
        replicas[1].ObservePosition(100);

        Assert.That(watermark.Unsynced, Is.False);
        Assert.That(watermark.CaughtUp(replicas), Is.EqualTo(0b10UL));
    }

    [Test]
    public void A_read_moving_to_another_server_makes_what_was_read_a_floor()
    {
        var watermark = new WriteWatermark();
        var beforeRead = DateTimeOffset.UtcNow;
        watermark.NoteRead(RoutingDecision.ToReplica(0, RoutingReason.Read));
        Assert.That(watermark.WouldReadOlderData(RoutingDecision.ToReplica(0, RoutingReason.Read), ReadConsistency.ReadYourWrites), Is.False, "the same replica");
        Assert.That(watermark.WouldReadOlderData(RoutingDecision.ToReplica(1, RoutingReason.Read), ReadConsistency.ReadYourWrites), Is.True, "another replica may be behind");
        Assert.That(watermark.WouldReadOlderData(RoutingDecision.ToReplica(1, RoutingReason.Read), ReadConsistency.Eventual), Is.False, "eventual reads do not care");

        Thread.Sleep(300);
        watermark.RequireReadFloor();
        Assert.That(watermark.HasWritten && watermark.Unsynced, Is.True, "the floor is asked like a write's (a position, when the primary has one)");
        watermark.Synced(null);
        Assert.That(watermark.LastWriteUtc, Is.GreaterThanOrEqualTo(beforeRead), "never earlier than the read (the coarse clock's error is covered)");
        Assert.That(watermark.LastWriteUtc, Is.LessThan(beforeRead + TimeSpan.FromMilliseconds(200)), "the read's time, not the move's: replicas a little behind still qualify");
        Assert.That(watermark.WouldReadOlderData(RoutingDecision.ToReplica(1, RoutingReason.Read), ReadConsistency.ReadYourWrites), Is.False, "the floor now guards the move");
    }

    [Test]
    public void A_read_floor_does_not_move_a_write_s_floor_and_the_next_write_does()
    {
        var watermark = new WriteWatermark();
        watermark.MarkWritten();
        watermark.Synced(null);
        var writeFloor = watermark.LastWriteUtc;
        watermark.NoteRead(RoutingDecision.ToPrimary(RoutingReason.ReadYourWrites));
        watermark.RequireReadFloor();
        watermark.Synced(null);
        Assert.That(watermark.LastWriteUtc, Is.GreaterThanOrEqualTo(writeFloor), "floors only rise");

        Thread.Sleep(20);
        var beforeWrite = DateTimeOffset.UtcNow;
        watermark.MarkWritten();
        watermark.Synced(null);
        Assert.That(watermark.LastWriteUtc, Is.GreaterThanOrEqualTo(beforeWrite));
    }

    private static Endpoint Replica()
        => new(FakeDialect.Instance.CreateConnector("Server=watermark-replica", EndpointRole.Replica), 0);

    private static void Probe(Endpoint endpoint, double lagSeconds)
        => endpoint.RecordProbe(new ProbeResult(true, true, 1, 0, "x", 1.0, 0, null), ProbeOutcome.Healthy, lagSeconds, 0, 3, true);
}

using System;
using System.Runtime.InteropServices;
using RwSplit.Routing;
using RwSplit.Topology;

namespace RwSplit.Connections;

/// <summary>
/// What a logical connection's reads must see: whether it wrote, up to which replication position (or, without
/// positions, since when), the cluster a token it applied came from, and where its last read ran (monotonic reads).
/// Pure state, no I/O: <see cref="ReadYourWrites"/> asks the servers. A struct held in the connection and reached by
/// <c>ref</c> (<see cref="RwSplitConnection.Watermark"/>): never copy it to a local.
/// </summary>
[StructLayout(LayoutKind.Auto)] // its bools packed together, not each padded to the next long: the connection is allocated per open
internal struct WriteWatermark
{
    private const int NoReadYet = -1;
    private const int ReadOnPrimary = -2;
    private const int ReadOnPrimaryByCapacity = -3;

    /// <summary>
    /// How far the coarse clock (<see cref="Environment.TickCount64"/>, a few ms per tick) may make a read look older
    /// than it was: added to a read's time, so that a floor taken from it is never earlier than the read.
    /// </summary>
    private const long CoarseClockMarginMs = 20;

    private int _lastReadServer = NoReadYet;
    private long _lastReadTick;
    private bool _writePending;

    public WriteWatermark()
    {
    }

    /// <summary>Whether a statement that writes (or might) ran, or a token was applied: read-your-writes then avoids replicas that lack it.</summary>
    public bool HasWritten { get; private set; }

    /// <summary>Whether the primary's position after the last write is still to be asked.</summary>
    public bool Unsynced { get; private set; }

    /// <summary>
    /// Whether the session wrote since the primary's position was last asked (<see cref="Unsynced"/> because of a write,
    /// not only because a read moved to another server).
    /// </summary>
    public readonly bool WritePending => _writePending;

    /// <summary>The position a replica must have replayed; -1 when unknown (the time rule applies).</summary>
    public long RequiredPosition { get; private set; } = -1;

    /// <summary>
    /// The time rule's floor: a moment after the session's last write completed (the first time a later statement
    /// needed it, see <see cref="Synced"/>), after the data it last read (<see cref="RequireReadFloor"/>), or a token's.
    /// </summary>
    public DateTimeOffset LastWriteUtc { get; private set; }

    /// <summary>The identity hash of the cluster an applied token came from; 0 when none was applied.</summary>
    public ulong TokenIdentity { get; private set; }

    /// <summary>
    /// A write is about to run: its position (or, without positions, its time) is asked lazily, by the first read that
    /// needs it, when the write has completed. No clock is read here: this runs for every write.
    /// </summary>
    public void MarkWritten()
    {
        HasWritten = true;
        Unsynced = true;
        _writePending = true;
    }

    /// <summary>Anything may be written from now on without RwSplit seeing it (a local transaction).</summary>
    public void AssumeWritten() => HasWritten = true;

    /// <summary>
    /// The primary answered where it is after the session's writes; or it had no position to give, and the time rule's
    /// floor becomes now: the session's writes completed before the statement that asks (a read, a token export) was
    /// routed. Taken when the write was routed, the floor would precede its commit, and a replica probed in between
    /// would pass for caught up without it.
    /// </summary>
    public void Synced(long? position)
    {
        if (position is { } p)
            RequiredPosition = Math.Max(RequiredPosition, p);
        else if (_writePending && DateTimeOffset.UtcNow is var now && now > LastWriteUtc)
            LastWriteUtc = now;
        Unsynced = false;
        _writePending = false;
    }

    /// <summary>
    /// Whether the required position came from a token and is beyond what the primary was last seen at: a primary's
    /// position only grows, so the primary is asked once before any read waits for it (see <see cref="ReadYourWrites"/>).
    /// </summary>
    public bool TokenPositionUnverified { get; private set; }

    /// <summary>Reads must see at least what <paramref name="token"/> covers.</summary>
    public void Require(ConsistencyToken token)
    {
        if (token.Position > RequiredPosition)
            TokenPositionUnverified = true;
        HasWritten = true;
        RequiredPosition = Math.Max(RequiredPosition, token.Position);
        if (token.WrittenAt > LastWriteUtc)
            LastWriteUtc = token.WrittenAt;
        if (token.IdentityHash != 0)
            TokenIdentity = token.IdentityHash;
    }

    /// <summary>
    /// Records where and when a read ran: the data it saw is the floor of the session's next reads. The time is the
    /// coarse clock's (6 ns here, against 23 ns for <see cref="System.Diagnostics.Stopwatch"/>): this runs for every read.
    /// </summary>
    public void NoteRead(in RoutingDecision decision)
    {
        _lastReadServer = decision.Target == RouteTarget.Replica ? decision.ReplicaIndex
            : decision.Reason == RoutingReason.PrimaryCapacity ? ReadOnPrimaryByCapacity
            : ReadOnPrimary;
        _lastReadTick = Environment.TickCount64;
    }

    /// <summary>
    /// Whether <paramref name="decision"/> could make a read-your-writes session go back in time: it sends the read to a
    /// replica other than the server of the session's last read (another replica, which may be behind the last one, or
    /// after a read on the primary, which is ahead of every replica). Then <see cref="RequireReadFloor"/> comes first.
    /// </summary>
    public bool WouldReadOlderData(in RoutingDecision decision, ReadConsistency consistency)
        => decision.Target == RouteTarget.Replica && consistency == ReadConsistency.ReadYourWrites
           && _lastReadServer != NoReadYet && _lastReadServer != decision.ReplicaIndex;

    /// <summary>
    /// Before a read moves to another server: everything the session's reads may have seen so far becomes a floor, as
    /// a write would (the primary's position now is at least the position of any data read before), so read-your-writes
    /// then only uses a replica that has replayed up to it.
    /// </summary>
    public void RequireReadFloor()
    {
        _lastReadServer = NoReadYet;
        HasWritten = true;
        Unsynced = true;

        // Without positions the time rule applies: the data read last was at most as new as the moment of that read.
        var now = DateTimeOffset.UtcNow;
        var readAt = now - TimeSpan.FromMilliseconds(Environment.TickCount64 - _lastReadTick - CoarseClockMarginMs);
        if (readAt > now)
            readAt = now;
        if (readAt > LastWriteUtc)
            LastWriteUtc = readAt;
    }

    /// <summary>The primary has reached the required position: the token's position is a real one.</summary>
    public void TokenPositionVerified() => TokenPositionUnverified = false;

    /// <summary>
    /// The primary is behind the position a token required (a position no write reached: the token was made on another
    /// timeline, or by a holder of the key): the requirement falls back to the primary's position now.
    /// </summary>
    public void RefuteTokenPosition(long primaryPosition)
    {
        RequiredPosition = primaryPosition;
        TokenPositionUnverified = false;
    }

    /// <summary>
    /// Whether the session's last read ran on the primary for its spare capacity (<see cref="RwSplitOptions.PrimaryReadWeight"/>):
    /// its next reads stay there, as they stay on a replica, instead of paying a floor to move.
    /// </summary>
    public readonly bool ReadsOnPrimaryByCapacity => _lastReadServer == ReadOnPrimaryByCapacity;

    /// <summary>The session ended (closed): the next session's first read sets no floor; what it wrote is still known.</summary>
    public void ForgetReads() => _lastReadServer = NoReadYet;

    /// <summary>
    /// The replicas known to have replayed the session's writes (a bit per replica): by position when one is known, else
    /// by the time rule (a replica whose data, at its last probe, was newer than the last write).
    /// </summary>
    public ulong CaughtUp(Endpoint[] replicas)
    {
        ulong mask = 0;
        for (var i = 0; i < replicas.Length; i++)
        {
            var replica = replicas[i];
            if (RequiredPosition >= 0)
            {
                if (replica.Position >= RequiredPosition)
                    mask |= 1UL << i;
            }
            else if (replica.LagSeconds is { } lag && replica.LastProbe is { } probed && probed - TimeSpan.FromSeconds(lag) > LastWriteUtc)
            {
                mask |= 1UL << i;
            }
        }

        return mask;
    }

    /// <summary>The token covering the session's writes, with <paramref name="identity"/> as its cluster, signed by <paramref name="dataSource"/>.</summary>
    public readonly ConsistencyToken ToToken(RwSplitDataSource dataSource, ulong identity) => dataSource.CreateToken(identity, RequiredPosition, LastWriteUtc);
}

using System;
using System.Diagnostics;
using System.Threading;

namespace RwSplit.Topology;

/// <summary>
/// One configured server of a data source and what is known of it now. Written by the topology monitor (one writer)
/// and by commands that see a connection fail; read by routing without locks.
/// </summary>
internal sealed class Endpoint
{
    private readonly object _gate = new();
    private long _skipUntilTimestamp;
    private long _position = -1;
    private long _positionTimestamp;
    private int _outstanding;
    private HealthState _health = HealthState.Initial;
    private volatile bool _admitted = true;

    public Endpoint(EndpointConnector connector, int replicaIndex)
    {
        Connector = connector;
        ReplicaIndex = replicaIndex;
    }

    public EndpointConnector Connector { get; }

    public EndpointAddress Address => Connector.Address;

    /// <summary>The configured role.</summary>
    public EndpointRole Role => Connector.Role;

    /// <summary>Index among the replicas, or -1 for the configured primary.</summary>
    public int ReplicaIndex { get; }

    /// <summary>The role the server reported last; <see langword="null"/> before the first successful probe.</summary>
    public EndpointRole? ObservedRole { get; private set; }

    /// <summary>The last known replayed (replica) or written (primary) position, -1 if unknown.</summary>
    public long Position => Volatile.Read(ref _position);

    /// <summary>When <see cref="Position"/> was observed (<see cref="Stopwatch"/> timestamp).</summary>
    public long PositionTimestamp => Volatile.Read(ref _positionTimestamp);

    /// <summary>Seconds behind the primary, when known.</summary>
    public double? LagSeconds { get; private set; }

    public long? PositionLag { get; private set; }

    /// <summary>Probe latency, exponentially smoothed, in milliseconds; 0 before the first probe.</summary>
    public double LatencyEwmaMs { get; private set; }

    /// <summary>Commands in flight on this endpoint.</summary>
    public int Outstanding => Volatile.Read(ref _outstanding);

    public string? LastError { get; private set; }

    /// <summary>The kind of <see cref="LastError"/> (<see cref="ErrorKinds"/>), free of message text.</summary>
    public string? LastErrorKind { get; private set; }

    public DateTimeOffset? LastProbe { get; private set; }

    public bool LastProbeReached { get; private set; }

    /// <summary>
    /// Whether a primary may take reads (<see cref="RwSplitOptions.PrimaryReadWeight"/>): the monitor's last probe reached
    /// it (or none ran yet), and no read failed to open a connection to it within the last <see cref="RwSplitOptions.ReplicaRetryDelay"/>.
    /// </summary>
    public bool MayServe => (LastProbeReached || LastProbe is null) && (!HasBackoff || Stopwatch.GetTimestamp() >= Volatile.Read(ref _skipUntilTimestamp));

    /// <summary>A read could not open a connection to this primary: it takes no reads for <paramref name="delay"/> (writes are not affected).</summary>
    public void SkipReadsFor(TimeSpan delay) => Volatile.Write(ref _skipUntilTimestamp, Stopwatch.GetTimestamp() + (long)(delay.TotalSeconds * Stopwatch.Frequency));

    /// <summary>The replica-set identity the server reported (same on the primary and its replicas).</summary>
    public string? Identity { get; private set; }

    /// <summary>Whether a back-off after a failed open was ever set (only then does availability need the clock).</summary>
    public bool HasBackoff => Volatile.Read(ref _skipUntilTimestamp) != 0;

    /// <summary>Whether reads may go to this replica now without reading the clock, when it has no back-off.</summary>
    public bool IsAdmitted => _admitted;

    /// <summary>Whether reads may go to this replica now (monitored: admitted; not monitored: not inside a back-off).</summary>
    public bool IsAvailable(long nowTimestamp) => _admitted && nowTimestamp >= Volatile.Read(ref _skipUntilTimestamp);

    public void BeginCommand() => Interlocked.Increment(ref _outstanding);

    public void EndCommand() => Interlocked.Decrement(ref _outstanding);

    /// <summary>A connection to the endpoint failed: eject it at once (and, unmonitored, skip it for <paramref name="delay"/>).</summary>
    public void MarkUnreachable(TimeSpan delay, string error, string errorKind)
    {
        lock (_gate)
        {
            _health = _health.Next(ProbeOutcome.Failed, int.MaxValue);
            LastError = error;
            LastErrorKind = errorKind;
        }

        Volatile.Write(ref _skipUntilTimestamp, Stopwatch.GetTimestamp() + (long)(delay.TotalSeconds * Stopwatch.Frequency));
    }

    /// <summary>A fresher position was seen (a read polled the replica): positions only move forward.</summary>
    public void ObservePosition(long position)
    {
        var now = Stopwatch.GetTimestamp();
        long current;
        while ((current = Volatile.Read(ref _position)) < position)
        {
            if (Interlocked.CompareExchange(ref _position, position, current) == current)
            {
                Volatile.Write(ref _positionTimestamp, now);
                return;
            }
        }
    }

    /// <summary>Records the identity a session on this server reported outside the probes (none had reported it yet).</summary>
    public void LearnIdentity(string identity)
    {
        lock (_gate)
            Identity ??= identity;
    }

    /// <summary>Records a probe. Returns the new admission state.</summary>
    public bool RecordProbe(ProbeResult probe, ProbeOutcome outcome, double? lagSeconds, long? positionLag, int readmitAfter, bool monitoredReplica)
    {
        lock (_gate)
        {
            LastProbe = DateTimeOffset.UtcNow;
            LastProbeReached = probe.Reached;
            LastError = probe.Error;
            LastErrorKind = probe.ErrorKind;
            if (probe.Reached)
            {
                ObservedRole = probe.IsReplica ? EndpointRole.Replica : EndpointRole.Primary;
                Identity = probe.Identity ?? Identity;
                LatencyEwmaMs = LatencyEwmaMs == 0 ? probe.LatencyMs : (0.3 * probe.LatencyMs) + (0.7 * LatencyEwmaMs);
                if (probe.Position is { } position)
                {
                    if (!probe.IsReplica)
                    {
                        Volatile.Write(ref _position, position); // a primary's position may restart after a failover
                        Volatile.Write(ref _positionTimestamp, probe.Timestamp);
                    }
                    else
                    {
                        ObservePosition(position);
                        Volatile.Write(ref _positionTimestamp, Math.Max(probe.Timestamp, PositionTimestamp));
                    }
                }
            }

            LagSeconds = lagSeconds;
            PositionLag = positionLag;
            if (monitoredReplica)
            {
                _health = _health.Next(outcome, readmitAfter);
                _admitted = _health.Admitted;
            }

            return _admitted;
        }
    }

    public EndpointStatus Status()
    {
        lock (_gate)
        {
            return new EndpointStatus(
                Address,
                Role,
                ObservedRole,
                Role == EndpointRole.Replica ? IsAvailable(Stopwatch.GetTimestamp()) && ObservedRole != EndpointRole.Primary : LastProbeReached || LastProbe is null,
                LastProbeReached,
                LagSeconds is { } lag ? TimeSpan.FromSeconds(lag) : null,
                PositionLag,
                Position >= 0 ? Position : null,
                LatencyEwmaMs > 0 ? TimeSpan.FromMilliseconds(LatencyEwmaMs) : null,
                _health.ConsecutiveHealthy,
                LastError,
                LastErrorKind,
                LastProbe);
        }
    }

    public override string ToString() => Connector.ToString();
}

/// <summary>The raw result of one probe.</summary>
internal readonly record struct ProbeResult(bool Reached, bool IsReplica, long? Position, double? SecondsSinceReplay, string? Identity, double LatencyMs, long Timestamp, string? Error, string? ErrorKind = null)
{
    public static ProbeResult Failed(string error, string errorKind, long timestamp) => new(false, false, null, null, null, 0, timestamp, error, errorKind);
}

using System;

namespace RwSplit.Topology;

/// <summary>What the topology monitor last observed of one endpoint. A snapshot: it does not change after it is returned.</summary>
public sealed class EndpointStatus
{
    internal EndpointStatus(
        EndpointAddress address,
        EndpointRole configuredRole,
        EndpointRole? observedRole,
        bool isAvailable,
        bool isReachable,
        TimeSpan? replicationLag,
        long? positionLag,
        long? position,
        TimeSpan? latency,
        int consecutiveHealthyProbes,
        string? lastError,
        string? lastErrorKind,
        DateTimeOffset? lastProbe)
    {
        Address = address;
        ConfiguredRole = configuredRole;
        ObservedRole = observedRole;
        IsAvailable = isAvailable;
        IsReachable = isReachable;
        ReplicationLag = replicationLag;
        PositionLag = positionLag;
        Position = position;
        Latency = latency;
        ConsecutiveHealthyProbes = consecutiveHealthyProbes;
        LastError = lastError;
        LastErrorKind = lastErrorKind;
        LastProbe = lastProbe;
    }

    /// <summary>The endpoint, free of secrets.</summary>
    public EndpointAddress Address { get; }

    /// <summary>The role it was configured with.</summary>
    public EndpointRole ConfiguredRole { get; }

    /// <summary>The role the server reported on the last successful probe; <see langword="null"/> before one.</summary>
    public EndpointRole? ObservedRole { get; }

    /// <summary>For a replica: whether reads may go to it now (reachable, within the lag limit, re-admitted). For the primary: whether it answered the last probe.</summary>
    public bool IsAvailable { get; }

    /// <summary>Whether the last probe reached the server.</summary>
    public bool IsReachable { get; }

    /// <summary>
    /// For a replica: how far behind the primary it is in time — zero when it has replayed everything the primary had
    /// written at its last probe, else the time since its last replayed commit. <see langword="null"/> when unknown.
    /// </summary>
    public TimeSpan? ReplicationLag { get; }

    /// <summary>For a replica: how far behind the primary it is in the dialect's position unit (PostgreSQL: WAL bytes).</summary>
    public long? PositionLag { get; }

    /// <summary>The replayed (replica) or written (primary) position at the last probe.</summary>
    public long? Position { get; }

    /// <summary>The probe's round-trip time, smoothed (EWMA).</summary>
    public TimeSpan? Latency { get; }

    /// <summary>Consecutive healthy probes (a replica is re-admitted after <see cref="RwSplitOptions.ReadmitAfterHealthyProbes"/>).</summary>
    public int ConsecutiveHealthyProbes { get; }

    /// <summary>Why the last probe or connection failed, without secrets; <see langword="null"/> when it succeeded.</summary>
    public string? LastError { get; }

    /// <summary>
    /// The kind of <see cref="LastError"/>, made of no message text: <c>timeout</c>, <c>socket:</c> and a socket error
    /// (<c>socket:ConnectionRefused</c>), <c>sqlstate:</c> and the server's error code (<c>sqlstate:57P01</c>),
    /// <c>no_row</c>, or an exception's type name. Safe to publish where <see cref="LastError"/> is not (a provider's
    /// message may name users or hosts). <see langword="null"/> when the last probe succeeded.
    /// </summary>
    public string? LastErrorKind { get; }

    /// <summary>When the endpoint was last probed.</summary>
    public DateTimeOffset? LastProbe { get; }

    /// <inheritdoc />
    public override string ToString()
        => $"{ConfiguredRole} {Address}: {(IsAvailable ? "available" : "unavailable")}, role {ObservedRole?.ToString() ?? "?"}, lag {ReplicationLag?.TotalSeconds.ToString("0.000", System.Globalization.CultureInfo.InvariantCulture) ?? "?"} s{(LastError is null ? "" : ", " + LastError)}";
}

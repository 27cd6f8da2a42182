using System;
using System.Diagnostics;
using System.Threading;
using RwSplit.Topology;
using RwSplit.Transactions;

namespace RwSplit;

// The data source's read-only health view (GetHealth) and the few facts it records for it.
public sealed partial class RwSplitDataSource
{
    private readonly long _createdTimestamp = Stopwatch.GetTimestamp();
    private TimeSpan _monitorInterval;
    private TimeSpan _maxReplicaLag;
    private long _failovers;
    private long _lastFailoverTimestamp;
    private long _fallbackReads;
    private long _lastFallbackTimestamp;

    /// <summary>
    /// What this data source knows of its health now: the monitor's last observations of every endpoint, when it last
    /// completed a round, failovers, reads that fell back to the primary, and what crash recovery left unresolved. Reads
    /// state the data source keeps anyway: it sends no query, takes no lock a command waits on, and is cheap enough to call
    /// on every health probe.
    /// </summary>
    /// <returns>An immutable snapshot.</returns>
    public DataSourceHealth GetHealth()
    {
        var now = Stopwatch.GetTimestamp();
        var monitor = _monitor;
        var lastRound = monitor?.LastRoundTimestamp ?? 0;
        var inFlight = 0;
        if (_fallbackSlots is { } slots && !IsDisposed)
            inFlight = Math.Max(0, _fallbackLimit - slots.CurrentCount);
        return new DataSourceHealth(
            Name,
            monitor is not null,
            _monitorInterval,
            monitor?.ProbeTimeout ?? TimeSpan.Zero,
            _maxReplicaLag,
            Since(_createdTimestamp, now) ?? TimeSpan.Zero,
            monitor?.Rounds ?? 0,
            Since(lastRound, now),
            Primary.Address,
            CurrentPrimary.Address,
            Interlocked.Read(ref _failovers),
            Since(Interlocked.Read(ref _lastFailoverTimestamp), now),
            Interlocked.Read(ref _fallbackReads),
            Since(Interlocked.Read(ref _lastFallbackTimestamp), now),
            inFlight,
            GetTopology(),
            Recovery is not null,
            Recovery?.Unresolved ?? Array.Empty<UnresolvedTransaction>(),
            Recovery?.HeuristicOutcomes ?? Array.Empty<HeuristicOutcome>());
    }

    private void InitializeHealth(RwSplitOptions options)
    {
        _monitorInterval = options.HealthCheckInterval;
        _maxReplicaLag = options.MaxReplicaLag;
    }

    /// <summary>The monitor switched writes to a promoted replica.</summary>
    private void NoteFailover()
    {
        Interlocked.Increment(ref _failovers);
        Interlocked.Exchange(ref _lastFailoverTimestamp, Stopwatch.GetTimestamp());
    }

    /// <summary>A read took a fallback slot: it runs on the primary for want of a replica.</summary>
    private void NoteFallbackRead()
    {
        Interlocked.Increment(ref _fallbackReads);
        Interlocked.Exchange(ref _lastFallbackTimestamp, Stopwatch.GetTimestamp());
    }

    private static TimeSpan? Since(long timestamp, long now) => timestamp == 0 ? null : Stopwatch.GetElapsedTime(timestamp, now);
}

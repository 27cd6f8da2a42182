using System;
using System.Globalization;

namespace RwSplit.Providers;

/// <summary>
/// How one engine reports replication: the topology monitor's probe, and the positions read-your-writes compares (the
/// primary's after a write, a replica's replayed one). A dialect without them (<see cref="RwSplitDialect.Replication"/>
/// is <see langword="null"/>) has no health monitoring: replicas are assumed available and read-your-writes reads
/// from the primary after a write.
/// </summary>
public abstract class ReplicationQueries
{
    /// <summary>
    /// The topology monitor's probe, run on a dedicated connection to each endpoint at every health-check interval and
    /// whenever a connection opens. One row of four columns: (0) <c>bool</c> whether the server is a read-only replica;
    /// (1) its replication position (a <c>bigint</c>, or what <see cref="ToPosition"/> maps), comparable across the
    /// replica set and increasing (on a replica the replayed position, on the primary the written one), or null; (2)
    /// <c>double</c> seconds since the last replayed commit on a replica, or null; (3) text identifying the replica set
    /// (the same on the primary and every replica, different for another cluster), or null.
    /// </summary>
    public abstract string HealthProbeQuery { get; }

    /// <summary>One value (see <see cref="ToPosition"/>): the primary's current write position (read-your-writes watermark), or null if unknown.</summary>
    public virtual string? WritePositionQuery => null;

    /// <summary>One value (see <see cref="ToPosition"/>): a replica's replayed position, polled while a read waits for a replica to catch up.</summary>
    public virtual string? ReplayPositionQuery => null;

    /// <summary>
    /// The position a value of the probe's position column or of a position query denotes, or <see langword="null"/> if
    /// it denotes none. The default converts an integer; an engine that reports positions in another form (SQL Server's
    /// <c>numeric(25,0)</c> LSNs) maps them here, keeping their order.
    /// </summary>
    /// <param name="value">The value the server returned.</param>
    public virtual long? ToPosition(object? value)
        => value is null or DBNull ? null : Convert.ToInt64(value, CultureInfo.InvariantCulture);
}
